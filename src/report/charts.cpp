// The charts, inline SVG: accuracy heatmaps, forgetting and routing bars,
// loss curves.
#include <algorithm>
#include <cmath>

#include "report/html_report.h"
#include "report/page.h"
#include "report/svg.h"

namespace sparc::report::detail {
namespace {

// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
// Yellow is last: it is faint on white.
const char* const kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                "#E69F00", "#56B4E9", "#000000", "#F0E442"};
constexpr int kPaletteSize = 8;
const char* kForgettingColour = "#D55E00";
const char* kBwtColour = "#0072B2";
const char* kRoutingColour = "#009E73";

}  // namespace

void Page::heatmaps(const std::vector<const RunData*>& runs,
                    const std::vector<std::string>& names) {
  out_ +=
      "<h3>Accuracy matrices</h3>\n<p class=\"note\">Row <i>after task i</i>, column "
      "<i>task j</i>: test accuracy (%) on task j once task i is trained; the top row is the "
      "untouched model (zero-shot). Outlined: the diagonal, each task just after its training. "
      "Entries right of it are measured before task j is trained; the bottom row is the final "
      "accuracy.</p>\n<div class=\"grid\">\n";
  for (size_t i = 0; i < runs.size(); ++i) out_ += heatmap(*runs[i], names[i]);
  out_ += "</div>\n";
}

std::string Page::heatmap(const RunData& run, const std::string& name) {
  const size_t T = run.tasks.size();
  const bool zs = !run.zero_shot.empty();
  const double cell = std::clamp(300.0 / double(T), 36.0, 64.0);
  const double font = cell >= 44 ? 13 : 11;
  const size_t max_chars = 14;
  double row_label_w = text_width("zero-shot", 12);
  double col_label_w = 0;
  for (const auto& t : run.tasks) {
    row_label_w = std::max(row_label_w, text_width(clip(t, max_chars), 12));
    col_label_w = std::max(col_label_w, text_width(clip(t, max_chars), 12));
  }
  const bool rotate = col_label_w > cell - 4;
  const double left = 26 + row_label_w + 8;
  const double top = 8;
  const double gap = zs ? 8 : 0;  // zero-shot row sits apart from the matrix
  const double rows_h = cell * double(run.accuracy.size()) + (zs ? cell + gap : 0);
  const double grid_w = cell * double(T);
  const double bottom_labels = rotate ? col_label_w * 0.66 + 12 : 20;
  const double legend_x = left + grid_w + 18;
  const double width = legend_x + 58;
  const double height = top + rows_h + bottom_labels + 26;

  std::string s = "<figure>\n<figcaption>" + escape(name) + "</figcaption>\n";
  s += svg_open("heatmap", width, height, "accuracy matrix of " + name);
  s += "<title>" + escape("Accuracy matrix: " + name) + "</title>\n";
  const std::string gid = "viridis" + std::to_string(++ids_);
  s += "<defs><linearGradient id=\"" + gid + "\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int k = 0; k <= 10; ++k)
    s += "<stop offset=\"" + num(k / 10.0, 1) + "\" stop-color=\"" + kViridis[k] + "\"/>";
  s += "</linearGradient></defs>\n";

  auto draw_row = [&](double y, const std::string& row_name, const std::vector<double>& values,
                      const std::string& row_kind) {
    s += label(left - 8, y + cell / 2 + 4, row_name, max_chars,
               "text-anchor=\"end\" font-size=\"12\"");
    s += "<g class=\"row\" data-row=\"" + row_kind + "\">\n";
    for (size_t j = 0; j < T; ++j) {
      const double v = values[j];
      const double x = left + cell * double(j);
      const bool ok = std::isfinite(v);
      s += rect(x, y, cell, cell,
                "fill=\"" + (ok ? viridis(v) : std::string("#e0e0e0")) +
                    "\" stroke=\"#ffffff\" stroke-width=\"1.5\"");
      s += text(x + cell / 2, y + cell / 2 + font * 0.36, pct(v),
                "class=\"cell\" text-anchor=\"middle\" font-size=\"" + px(font) +
                    "\" style=\"fill:" + (ok ? ink_on(v) : "#1a1a1a") + "\"");
    }
    s += "</g>\n";
  };
  double y = top;
  if (zs) {
    draw_row(y, "zero-shot", run.zero_shot, "zero-shot");
    y += cell + gap;
  }
  for (size_t i = 0; i < run.accuracy.size(); ++i, y += cell) {
    draw_row(y, run.tasks[i], run.accuracy[i], "after-" + std::to_string(i));
    s += rect(left + cell * double(i) + 1.5, y + 1.5, cell - 3, cell - 3,
              "fill=\"none\" stroke=\"#1a1a1a\" stroke-width=\"2\"");
  }

  // Column labels, the axis titles.
  const double label_y = top + rows_h + 14;
  for (size_t j = 0; j < T; ++j) {
    const double x = left + cell * (double(j) + 0.5);
    if (rotate)
      s += label(x + 4, label_y - 2, run.tasks[j], max_chars,
                 "text-anchor=\"end\" font-size=\"12\" transform=\"rotate(-40 " + px(x + 4) + " " +
                     px(label_y - 2) + ")\"");
    else
      s += label(x, label_y, run.tasks[j], max_chars, "text-anchor=\"middle\" font-size=\"12\"");
  }
  s += text(left + grid_w / 2, height - 6, "evaluated on task j",
            "text-anchor=\"middle\" font-size=\"12\" font-style=\"italic\"");
  const double ay = top + rows_h / 2;
  s += text(
      14, ay, "after training task i",
      "text-anchor=\"middle\" font-size=\"12\" font-style=\"italic\" transform=\"rotate(-90 14 " +
          px(ay) + ")\"");

  // Colour scale: 0 to 100 %, fixed so that methods compare at a glance.
  s += "<g class=\"legend\">\n";
  s += rect(legend_x, top, 12, rows_h,
            "fill=\"url(#" + gid + ")\" stroke=\"#888\" stroke-width=\"0.5\"");
  for (int k = 0; k <= 4; ++k) {
    const double ty = top + rows_h * (1 - k / 4.0);
    s += line(legend_x + 12, ty, legend_x + 16, ty, "stroke=\"#555\"");
    s += text(legend_x + 18, ty + 4, std::to_string(25 * k), "font-size=\"11\"");
  }
  s += text(legend_x + 6, top + rows_h + 16, "%", "text-anchor=\"middle\" font-size=\"11\"");
  s += "</g>\n</svg>\n</figure>\n";
  return s;
}

// Grouped bars per run: forgetting (>= 0) and BWT (usually <= 0), in points.
void Page::forgetting_chart(const std::vector<const RunData*>& runs,
                            const std::vector<std::string>& names) {
  out_ +=
      "<h3>Forgetting and backward transfer</h3>\n<p class=\"note\">Per method: mean "
      "forgetting (drop from each task's best accuracy; lower is better) and BWT (mean change on "
      "earlier tasks after training the last one; 0 or above: no forgetting), in percentage "
      "points.</p>\n";
  double lo = 0, hi = 0;
  for (const auto* r : runs)
    for (double v : {r->forgetting, r->bwt})
      if (std::isfinite(v)) lo = std::min(lo, 100 * v), hi = std::max(hi, 100 * v);
  if (hi - lo < 5) hi = lo + 5;  // an all-zero chart still has an axis, in whole points
  const auto ticks = nice_ticks(lo, hi, 5);
  lo = ticks.front(), hi = ticks.back();
  const int dec = tick_decimals(ticks);

  const double group = std::clamp(560.0 / double(runs.size()), 90.0, 150.0);
  const double left = 62, top = 34, plot_h = 220;
  double label_w = 0;
  for (const auto& n : names) label_w = std::max(label_w, text_width(clip(n, 22), 12));
  const bool rotate = label_w > group - 8;
  const double bottom = (rotate ? label_w * 0.72 + 14 : 24) + 22;
  const double plot_w = group * double(runs.size());
  const double width = left + plot_w + 16, height = top + plot_h + bottom;
  auto Y = [&](double v) { return top + plot_h * (hi - v) / (hi - lo); };

  std::string s = svg_open("bars forgetting", width, height, "forgetting and BWT per method");
  s += "<title>Forgetting and BWT per method</title>\n";
  // Legend.
  s += rect(left, 8, 12, 12, std::string("fill=\"") + kForgettingColour + "\"");
  s += text(left + 17, 18, "forgetting", "font-size=\"12\"");
  s += rect(left + 100, 8, 12, 12, std::string("fill=\"") + kBwtColour + "\"");
  s += text(left + 117, 18, "BWT", "font-size=\"12\"");
  for (double t : ticks) {
    s += line(left, Y(t), left + plot_w, Y(t),
              t == 0 ? "stroke=\"#333\" stroke-width=\"1.2\"" : "stroke=\"#e3e3e3\"");
    s += text(left - 6, Y(t) + 4, num(t, dec), "text-anchor=\"end\" font-size=\"11\"");
  }
  const double ay = top + plot_h / 2;
  s += text(
      16, ay, "percentage points",
      "text-anchor=\"middle\" font-size=\"12\" font-style=\"italic\" transform=\"rotate(-90 16 " +
          px(ay) + ")\"");
  const double bar = std::min(34.0, (group - 24) / 2);
  for (size_t i = 0; i < runs.size(); ++i) {
    const double gx = left + group * double(i) + group / 2;
    const std::pair<double, const char*> bars[] = {{runs[i]->forgetting, kForgettingColour},
                                                   {runs[i]->bwt, kBwtColour}};
    for (int b = 0; b < 2; ++b) {
      const double v = bars[b].first;
      const double x = gx - bar - 2 + b * (bar + 4);
      if (!std::isfinite(v)) {
        s += text(x + bar / 2, Y(0) - 4, "n/a", "text-anchor=\"middle\" font-size=\"10\"");
        continue;
      }
      const double y0 = Y(std::max(0.0, 100 * v)), y1 = Y(std::min(0.0, 100 * v));
      s += rect(x, y0, bar, std::max(1.0, y1 - y0), std::string("fill=\"") + bars[b].second + "\"");
      const double ty = v >= 0 ? y0 - 4 : y1 + 12;
      s += text(x + bar / 2, ty, b == 0 ? points(v) : pts(v),
                std::string("class=\"value\" data-bar=\"") + (b == 0 ? "forgetting" : "bwt") +
                    "\" text-anchor=\"middle\" font-size=\"10.5\"");
    }
    const double ly = top + plot_h + 16;
    if (rotate)
      s += label(gx + 4, ly, names[i], 22,
                 "text-anchor=\"end\" font-size=\"12\" transform=\"rotate(-35 " + px(gx + 4) + " " +
                     px(ly) + ")\"");
    else
      s += label(gx, ly, names[i], 22, "text-anchor=\"middle\" font-size=\"12\"");
  }
  s += line(left, top, left, top + plot_h, "stroke=\"#333\"");
  s += text(left + plot_w / 2, height - 6, "method",
            "text-anchor=\"middle\" font-size=\"12\" font-style=\"italic\"");
  out_ += s + "</svg>\n";
}

void Page::routing_chart(const std::vector<const RunData*>& runs,
                         const std::vector<std::string>& names) {
  out_ +=
      "<h3>Routing accuracy</h3>\n<p class=\"note\">Share of test examples (all tasks, after "
      "the last one) routed to their own task's prompt by subspace reconstruction error. "
      "Methods with one shared set of parameters (lora, full) do not route.</p>\n";
  std::vector<size_t> routed;
  for (size_t i = 0; i < runs.size(); ++i)
    if (std::isfinite(runs[i]->routing_accuracy)) routed.push_back(i);
  if (routed.empty()) {
    out_ += "<p class=\"note\">No run of this setting measured routing accuracy.</p>\n";
    return;
  }
  double label_w = 0;
  for (size_t i : routed) label_w = std::max(label_w, text_width(clip(names[i], 22), 12));
  const double left = label_w + 18, top = 10, row = 30, plot_w = 420;
  const double plot_h = row * double(routed.size());
  const double width = left + plot_w + 56, height = top + plot_h + 44;
  std::string s = svg_open("bars routing", width, height, "routing accuracy per method");
  s += "<title>Routing accuracy per method</title>\n";
  for (int k = 0; k <= 4; ++k) {
    const double x = left + plot_w * k / 4.0;
    s += line(x, top, x, top + plot_h, "stroke=\"#e3e3e3\"");
    s += text(x, top + plot_h + 14, std::to_string(25 * k),
              "text-anchor=\"middle\" font-size=\"11\"");
  }
  for (size_t k = 0; k < routed.size(); ++k) {
    const RunData& r = *runs[routed[k]];
    const double y = top + row * double(k);
    s += label(left - 8, y + row / 2 + 4, names[routed[k]], 22,
               "text-anchor=\"end\" font-size=\"12\"");
    const double v = std::clamp(r.routing_accuracy, 0.0, 1.0);
    s += rect(left, y + 5, plot_w * v, row - 10, std::string("fill=\"") + kRoutingColour + "\"");
    s += text(left + plot_w * v + 5, y + row / 2 + 4, pct(r.routing_accuracy),
              "class=\"value\" font-size=\"11\"");
  }
  s += line(left, top, left, top + plot_h, "stroke=\"#333\"");
  s += text(left + plot_w / 2, height - 6, "routing accuracy (%)",
            "text-anchor=\"middle\" font-size=\"12\" font-style=\"italic\"");
  out_ += s + "</svg>\n";
}

void Page::loss_curves(const std::vector<const RunData*>& runs,
                       const std::vector<std::string>& names) {
  out_ +=
      "<h3>Training loss</h3>\n<p class=\"note\">Loss at each logged optimizer step "
      "(<code>metrics.jsonl</code>), one line per task, steps counted from the start of the "
      "task.</p>\n<div class=\"grid\">\n";
  for (size_t i = 0; i < runs.size(); ++i) out_ += loss_chart(*runs[i], names[i]);
  out_ += "</div>\n";
}

std::string Page::loss_chart(const RunData& run, const std::string& name) {
  std::string s = "<figure>\n<figcaption>" + escape(name) + "</figcaption>\n";
  size_t points = 0;
  double lo = INFINITY, hi = -INFINITY;
  std::int64_t max_step = 1;
  for (const auto& [task, curve] : run.loss_curves)
    for (const auto& p : curve)
      if (std::isfinite(p.loss)) {
        ++points;
        lo = std::min(lo, p.loss), hi = std::max(hi, p.loss);
        max_step = std::max(max_step, p.step);
      }
  if (points == 0) {
    s += "<p class=\"note\">" +
         std::string(run.has_metrics ? "metrics.jsonl has no logged step."
                                     : "No metrics.jsonl in this run directory.") +
         "</p>\n</figure>\n";
    return s;
  }
  const auto yt = nice_ticks(lo, hi, 4);
  // The x axis ends at the last logged step, not at the next round tick.
  auto xt = nice_ticks(0, double(max_step), 5);
  while (xt.size() > 2 && xt.back() > double(max_step)) xt.pop_back();
  const double y_lo = yt.front(), y_hi = yt.back(), x_hi = double(max_step);
  const int ydec = tick_decimals(yt);

  // Legend rows above the plot, as many tasks per row as fit.
  const double width = 380, left = 52, right = 14;
  const double plot_w = width - left - right;
  std::vector<std::pair<double, double>> legend_pos;
  double lx = left, ly = 14;
  for (const auto& [task, curve] : run.loss_curves) {
    const double w = 18 + text_width(clip(task, 16), 11) + 14;
    if (lx + w > width - right && lx > left) lx = left, ly += 17;
    legend_pos.emplace_back(lx, ly);
    lx += w;
  }
  const double top = ly + 14, plot_h = 170;
  const double height = top + plot_h + 40;
  auto X = [&](double step) { return left + plot_w * step / x_hi; };
  auto Y = [&](double v) { return top + plot_h * (y_hi - v) / (y_hi - y_lo); };

  s += svg_open("loss", width, height, "training loss per task of " + name);
  s += "<title>" + escape("Training loss: " + name) + "</title>\n";
  for (double t : yt) {
    s += line(left, Y(t), left + plot_w, Y(t), "stroke=\"#e3e3e3\"");
    s += text(left - 5, Y(t) + 4, num(t, ydec), "text-anchor=\"end\" font-size=\"11\"");
  }
  for (double t : xt) {
    s += line(X(t), top + plot_h, X(t), top + plot_h + 4, "stroke=\"#333\"");
    s += text(X(t), top + plot_h + 16, num(t, 0), "text-anchor=\"middle\" font-size=\"11\"");
  }
  s += line(left, top, left, top + plot_h, "stroke=\"#333\"");
  s += line(left, top + plot_h, left + plot_w, top + plot_h, "stroke=\"#333\"");
  s += text(left + plot_w / 2, height - 4, "optimizer step within the task",
            "text-anchor=\"middle\" font-size=\"12\" font-style=\"italic\"");
  const double ay = top + plot_h / 2;
  s += text(
      13, ay, "loss",
      "text-anchor=\"middle\" font-size=\"12\" font-style=\"italic\" transform=\"rotate(-90 13 " +
          px(ay) + ")\"");
  for (size_t k = 0; k < run.loss_curves.size(); ++k) {
    const auto& [task, curve] = run.loss_curves[k];
    const std::string colour = kPalette[k % kPaletteSize];
    // Lines of more than the palette's tasks differ by dash pattern too.
    const std::string dash = k >= size_t(kPaletteSize) ? " stroke-dasharray=\"5 3\"" : "";
    std::string pts_attr;
    for (const auto& p : curve)
      if (std::isfinite(p.loss)) pts_attr += px(X(double(p.step))) + "," + px(Y(p.loss)) + " ";
    if (!pts_attr.empty()) pts_attr.pop_back();
    s += "<polyline class=\"curve\" data-task=\"" + escape(task) + "\" points=\"" + pts_attr +
         "\" fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"1.8\"" + dash + "/>\n";
    if (curve.size() == 1)  // a single point would not show as a line
      s += "<circle cx=\"" + px(X(double(curve[0].step))) + "\" cy=\"" + px(Y(curve[0].loss)) +
           "\" r=\"2.5\" fill=\"" + colour + "\"/>\n";
    const auto [x, y] = legend_pos[k];
    s += line(x, y - 4, x + 14, y - 4, "stroke=\"" + colour + "\" stroke-width=\"2.5\"" + dash);
    s += label(x + 18, y, task, 16, "font-size=\"11\"");
  }
  s += "</svg>\n</figure>\n";
  return s;
}

}  // namespace sparc::report::detail
