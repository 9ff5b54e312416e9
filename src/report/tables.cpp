// The metrics table and the prompt-reuse tables.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/html_report.h"
#include "report/page.h"
#include "report/svg.h"

namespace sparc::report::detail {
namespace {

double mean(const std::vector<double>& v) {
  double s = 0;
  size_t n = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++n;
  return n ? s / double(n) : kMissing;
}

}  // namespace

void Page::metrics_table(const std::vector<const RunData*>& runs,
                         const std::vector<std::string>& names, bool domain) {
  out_ +=
      "<h3>Metrics</h3>\n<p class=\"note\">ACC: mean final accuracy. BWT: mean change on "
      "earlier tasks after the last one (negative: forgetting). FWT: accuracy on a task before "
      "training it minus zero-shot. Forgetting: mean drop from each task's best accuracy. "
      "Retention: final over just-trained accuracy, mean over tasks. Trainable: parameters "
      "trained per task and their share of the model. Tokens/s: training throughput, mean "
      "over tasks.";
  if (domain) out_ += " Routing: share of test examples routed to their own task.";
  out_ +=
      "</p>\n<div class=\"scroll\"><table class=\"metrics\">\n<thead><tr>"
      "<th>method</th><th>ACC %</th><th>BWT</th><th>FWT</th><th>forgetting</th>"
      "<th>retention %</th><th>trainable / task</th><th>trainable %</th><th>tokens/s</th>";
  if (domain) out_ += "<th>routing %</th>";
  out_ += "<th>perplexity before &#8594; after</th><th>run</th></tr></thead>\n<tbody>\n";
  // The best value of a column is bold (ties included).
  auto best = [&](auto get, bool higher) {
    double b = kMissing;
    for (const auto* r : runs) {
      const double v = get(*r);
      if (std::isfinite(v) && (!std::isfinite(b) || (higher ? v > b : v < b))) b = v;
    }
    return b;
  };
  const double best_acc = best([](const RunData& r) { return r.acc; }, true);
  const double best_bwt = best([](const RunData& r) { return r.bwt; }, true);
  const double best_fgt = best([](const RunData& r) { return r.forgetting; }, false);
  auto cell = [&](const std::string& metric, const std::string& value, bool is_best) {
    out_ += "<td class=\"num" + std::string(is_best ? " best" : "") + "\" data-metric=\"" + metric +
            "\">" + escape(value) + "</td>";
  };
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunData& r = *runs[i];
    out_ +=
        "<tr data-run=\"" + escape(names[i]) + "\"><th scope=\"row\">" + escape(names[i]) + "</th>";
    const bool several = runs.size() > 1;
    cell("acc", pct(r.acc), several && pct(r.acc) == pct(best_acc));
    cell("bwt", pts(r.bwt), several && pts(r.bwt) == pts(best_bwt));
    cell("fwt", pts(r.fwt), false);
    cell("forgetting", points(r.forgetting), several && points(r.forgetting) == points(best_fgt));
    const double ret = mean(r.retention);
    cell("retention", std::isfinite(ret) ? num(ret, 1) : "n/a", false);
    cell("trainable", r.trainable_params >= 0 ? with_thousands(r.trainable_params) : "n/a", false);
    char frac[32] = "n/a";
    if (std::isfinite(r.trainable_fraction))
      std::snprintf(frac, sizeof frac, "%.3g", 100 * r.trainable_fraction);
    cell("trainable_pct", frac, false);
    cell("tokens_per_s",
         std::isfinite(r.tokens_per_s) ? with_thousands(std::llround(r.tokens_per_s)) : "n/a",
         false);
    if (domain) cell("routing", pct(r.routing_accuracy), false);
    cell("ppl",
         std::isfinite(r.ppl_before) && std::isfinite(r.ppl_after)
             ? num(r.ppl_before, 2) + " \xE2\x86\x92 " + num(r.ppl_after, 2)
             : "n/a",
         false);
    out_ += "<td><code>" + escape(run_path(r)) + "</code></td></tr>\n";
  }
  out_ += "</tbody></table></div>\n";
}

void Page::reuse_tables(const std::vector<const RunData*>& runs,
                        const std::vector<std::string>& names) {
  std::vector<size_t> shown, without;
  for (size_t i = 0; i < runs.size(); ++i) {
    bool any = false;
    for (const auto& d : runs[i]->reuse) any |= !d.similarities.empty() || !d.reused_from.empty();
    (any ? shown : without).push_back(i);
  }
  out_ +=
      "<h3>Prompt reuse decisions</h3>\n<p class=\"note\">Per task, in training order: the "
      "similarity of its PCA subspace to each earlier task's (mean squared cosine of the "
      "principal angles, 0 to 1) and the initialisation chosen: the prompt of the most similar "
      "task when the best similarity reaches the reuse threshold, else task tokens projected "
      "orthogonally to the stored prompts' directions.</p>\n";
  for (size_t i : shown) {
    const RunData& r = *runs[i];
    out_ += "<figure>\n<figcaption>" + escape(names[i]);
    if (std::isfinite(r.reuse_threshold))
      out_ += " (reuse threshold " + num(r.reuse_threshold, 2) + ")";
    out_ += "</figcaption>\n<div class=\"scroll\"><table class=\"reuse\" data-run=\"" +
            escape(names[i]) + "\">\n<thead><tr><th>task</th><th>initialisation</th>";
    // The last task is never an earlier one: no column for it.
    const std::vector<std::string> earlier(r.tasks.begin(), r.tasks.end() - 1);
    for (const auto& t : earlier) out_ += "<th>similarity to <code>" + escape(t) + "</code></th>";
    out_ += "</tr></thead>\n<tbody>\n";
    for (size_t k = 0; k < r.reuse.size(); ++k) {
      const ReuseDecision& d = r.reuse[k];
      std::string init;
      if (!d.reused_from.empty())
        init = "reused from <code>" + escape(d.reused_from) + "</code>";
      else if (d.similarities.empty())
        init = "sampled task tokens (nothing stored yet)";
      else
        init = "orthogonal init (" + std::to_string(d.orthogonal_directions) + " direction" +
               (d.orthogonal_directions == 1 ? "" : "s") + " removed" +
               (d.orthogonal_capped ? ", capped" : "") + ")";
      out_ += "<tr><th scope=\"row\"><code>" + escape(d.task) + "</code></th><td>" + init + "</td>";
      for (const auto& t : earlier) {
        auto it = std::find_if(d.similarities.begin(), d.similarities.end(),
                               [&](const auto& p) { return p.first == t; });
        if (it == d.similarities.end()) {
          out_ += "<td class=\"num\"></td>";
          continue;
        }
        const bool chosen = it->first == d.reused_from;
        out_ += "<td class=\"num" + std::string(chosen ? " reused" : "") + "\">" +
                (std::isfinite(it->second) ? num(it->second, 3) : "n/a") + "</td>";
      }
      out_ += "</tr>\n";
    }
    out_ += "</tbody></table></div>\n</figure>\n";
  }
  if (!without.empty()) {
    out_ +=
        "<p class=\"note\">No reuse decisions (the method does not initialise from stored "
        "prompts): ";
    for (size_t k = 0; k < without.size(); ++k) out_ += (k ? ", " : "") + escape(names[without[k]]);
    out_ += ".</p>\n";
  }
}

}  // namespace sparc::report::detail
