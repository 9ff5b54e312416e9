#include "report/html_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "core/error.h"

namespace sparc::report {
namespace {

// Okabe-Ito: distinguishable with the common colour-vision deficiencies.
// Yellow is last: it is faint on white.
const char* const kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                "#E69F00", "#56B4E9", "#000000", "#F0E442"};
constexpr int kPaletteSize = 8;
const char* kForgettingColour = "#D55E00";
const char* kBwtColour = "#0072B2";
const char* kRoutingColour = "#009E73";

// Viridis (perceptually uniform, colour-blind safe, readable in greyscale).
const char* const kViridis[] = {"#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c",
                                "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"};

std::string num(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
std::string px(double v) { return num(v, 1); }

// Percent of a [0, 1] accuracy, or "n/a".
std::string pct(double v) { return std::isfinite(v) ? num(100 * v, 1) : "n/a"; }
// Percentage points of a difference of accuracies, signed.
std::string pts(double v) {
  if (!std::isfinite(v)) return "n/a";
  std::string s = num(100 * v, 1);
  if (s == "-0.0") s = "0.0";
  return (100 * v > 0 && s != "0.0" ? "+" : "") + s;
}

// Percentage points, unsigned (forgetting is never negative).
std::string points(double v) { return pct(v); }

std::string with_thousands(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (n < 0 ? "-" : "") + out;
}

std::string viridis(double t) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0);
  const double x = t * 10;
  const int i = std::min(9, int(x));
  const double f = x - i;
  auto channel = [](const char* hex, int k) {
    return std::stoi(std::string(hex + 1 + 2 * k, 2), nullptr, 16);
  };
  char buf[8];
  int rgb[3];
  for (int k = 0; k < 3; ++k)
    rgb[k] = int(std::lround(channel(kViridis[i], k) * (1 - f) + channel(kViridis[i + 1], k) * f));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}
// Text on a viridis cell: white on the dark half, black on the light half.
const char* ink_on(double t) { return t < 0.55 ? "#ffffff" : "#000000"; }

// Labels longer than `max` characters are cut (the full text goes in a <title>).
std::string clip(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max - 1;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // whole UTF-8 characters
  return s.substr(0, n) + "\xE2\x80\xA6";
}
double text_width(const std::string& s, double font) { return 0.6 * font * double(s.size()); }

// Ticks covering [lo, hi] at 1, 2 or 5 times a power of ten, about `n` of them.
std::vector<double> nice_ticks(double lo, double hi, int n = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / n;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::floor(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  if (ticks.front() > lo + step * 1e-9) ticks.insert(ticks.begin(), ticks.front() - step);
  if (ticks.back() < hi - step * 1e-9) ticks.push_back(ticks.back() + step);
  return ticks;
}
int tick_decimals(const std::vector<double>& ticks) {
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  return step >= 1 ? 0 : int(std::ceil(-std::log10(step) - 1e-9));
}

std::string svg_open(const std::string& cls, double w, double h, const std::string& label) {
  return "<svg class=\"" + cls + "\" width=\"" + px(w) + "\" height=\"" + px(h) +
         "\" viewBox=\"0 0 " + px(w) + " " + px(h) + "\" role=\"img\" aria-label=\"" +
         escape(label) + "\">\n";
}
std::string text(double x, double y, const std::string& s, const std::string& attrs = "") {
  return "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\"" + (attrs.empty() ? "" : " " + attrs) +
         ">" + escape(s) + "</text>\n";
}
// A label cut to `max` characters, the full text as its tooltip.
std::string label(double x, double y, const std::string& s, size_t max, const std::string& attrs) {
  const std::string shown = clip(s, max);
  std::string out = "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\" " + attrs + ">";
  if (shown != s) out += "<title>" + escape(s) + "</title>";
  return out + escape(shown) + "</text>\n";
}
std::string line(double x1, double y1, double x2, double y2, const std::string& attrs) {
  return "<line x1=\"" + px(x1) + "\" y1=\"" + px(y1) + "\" x2=\"" + px(x2) + "\" y2=\"" + px(y2) +
         "\" " + attrs + "/>\n";
}
std::string rect(double x, double y, double w, double h, const std::string& attrs) {
  return "<rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(w) + "\" height=\"" + px(h) +
         "\" " + attrs + "/>\n";
}

std::string setting_title(const std::string& setting) {
  if (setting == "task-incremental") return "Task-incremental";
  if (setting == "domain-incremental") return "Domain-incremental";
  return "Setting: " + setting;
}
std::string setting_anchor(const std::string& setting) {
  std::string a = "setting-";
  for (char c : setting) a += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return a;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  size_t n = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++n;
  return n ? s / double(n) : kMissing;
}

// The name a run goes by on the page: its method, plus the directory's
// last component when the same method appears twice in one setting.
std::vector<std::string> run_labels(const std::vector<const RunData*>& runs) {
  std::map<std::string, int> count;
  for (const auto* r : runs) ++count[r->method];
  std::vector<std::string> out;
  for (const auto* r : runs) {
    if (count[r->method] == 1) {
      out.push_back(r->method);
      continue;
    }
    std::string d = r->dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    out.push_back(r->method + " (" + d.substr(d.find_last_of('/') + 1) + ")");
  }
  return out;
}

class Page {
 public:
  std::string render(const std::vector<RunData>& runs);

 private:
  void metrics_table(const std::vector<const RunData*>& runs, const std::vector<std::string>& names,
                     bool domain);
  void heatmaps(const std::vector<const RunData*>& runs, const std::vector<std::string>& names);
  std::string heatmap(const RunData& run, const std::string& name);
  void forgetting_chart(const std::vector<const RunData*>& runs,
                        const std::vector<std::string>& names);
  void routing_chart(const std::vector<const RunData*>& runs,
                     const std::vector<std::string>& names);
  void loss_curves(const std::vector<const RunData*>& runs, const std::vector<std::string>& names);
  std::string loss_chart(const RunData& run, const std::string& name);
  void reuse_tables(const std::vector<const RunData*>& runs, const std::vector<std::string>& names);

  std::string out_;
  int ids_ = 0;  // unique SVG ids (gradients) across the page
};

const char* kStyle = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1a1a1a; background: #ffffff; margin: 0 auto; padding: 16px 28px 48px;
       max-width: 1320px; line-height: 1.45; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.35em; margin: 1.6em 0 0.4em; padding-bottom: 4px; border-bottom: 2px solid #ccc; }
h3 { font-size: 1.1em; margin: 1.4em 0 0.3em; }
p.note, p.meta { color: #444; margin: 0.2em 0 0.6em; font-size: 0.93em; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.92em; margin: 0.4em 0 0.8em; }
th, td { border: 1px solid #d0d0d0; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
td code { word-break: break-all; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; }
td.reused { background: #dcecf7; font-weight: 700; }
.scroll { overflow-x: auto; }
.grid { display: flex; flex-wrap: wrap; gap: 18px 28px; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-weight: 600; margin: 0 0 4px; font-size: 0.98em; }
svg { max-width: 100%; height: auto; font-family: inherit; }
svg text { fill: #1a1a1a; }
svg text.cell { font-variant-numeric: tabular-nums; }
)";

std::string Page::render(const std::vector<RunData>& runs) {
  out_ += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n";
  out_ += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n";
  out_ +=
      "<title>sparc report</title>\n<style>" + std::string(kStyle) + "</style>\n</head>\n<body>\n";
  out_ += "<h1>sparc continual-learning report</h1>\n";
  out_ += "<p class=\"meta\">" + std::to_string(runs.size()) + " run" +
          (runs.size() == 1 ? "" : "s") + ": ";
  for (size_t i = 0; i < runs.size(); ++i)
    out_ += (i ? ", " : "") + std::string("<code>") + escape(runs[i].dir) + "</code>";
  out_ +=
      ". Accuracies are percentages of the test split; BWT, FWT and forgetting are in "
      "percentage points.</p>\n";

  // Settings in a fixed order, then any other in order of appearance.
  std::vector<std::string> settings = {"task-incremental", "domain-incremental"};
  for (const auto& r : runs)
    if (std::find(settings.begin(), settings.end(), r.setting) == settings.end())
      settings.push_back(r.setting);
  std::vector<std::pair<std::string, std::vector<const RunData*>>> groups;
  for (const auto& s : settings) {
    std::vector<const RunData*> members;
    for (const auto& r : runs)
      if (r.setting == s) members.push_back(&r);
    if (!members.empty()) groups.emplace_back(s, members);
  }
  if (groups.size() > 1) {
    out_ += "<p class=\"meta\">Settings:";
    for (const auto& [s, members] : groups)
      out_ += " <a href=\"#" + escape(setting_anchor(s)) + "\">" + escape(setting_title(s)) +
              "</a> (" + std::to_string(members.size()) + ")";
    out_ += "</p>\n";
  }

  for (const auto& [setting, members] : groups) {
    const bool domain = setting == "domain-incremental";
    const auto names = run_labels(members);
    out_ += "<section id=\"" + escape(setting_anchor(setting)) + "\">\n<h2>" +
            escape(setting_title(setting)) + "</h2>\n";
    // Task sequences: usually one for the whole setting.
    std::set<std::vector<std::string>> sequences;
    for (const auto* r : members) sequences.insert(r->tasks);
    for (const auto& seq : sequences) {
      out_ += "<p class=\"meta\">Task sequence: ";
      for (size_t i = 0; i < seq.size(); ++i)
        out_ += (i ? " &#8594; " : "") + std::string("<code>") + escape(seq[i]) + "</code>";
      out_ += "</p>\n";
    }
    metrics_table(members, names, domain);
    heatmaps(members, names);
    forgetting_chart(members, names);
    if (domain) routing_chart(members, names);
    loss_curves(members, names);
    reuse_tables(members, names);
    out_ += "</section>\n";
  }
  out_ += "</body>\n</html>\n";
  return std::move(out_);
}

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
    out_ += "<td><code>" + escape(r.dir) + "</code></td></tr>\n";
  }
  out_ += "</tbody></table></div>\n";
}

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

}  // namespace

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        // Control characters are not allowed in XML text: drop them.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') break;
        out += c;
    }
  }
  return out;
}

std::string render_html(const std::vector<RunData>& runs) { return Page().render(runs); }

void write_report(const std::vector<std::string>& run_dirs, const std::string& out_path) {
  if (run_dirs.empty()) throw InputError("sparc report", "no run directory given");
  std::vector<RunData> runs;
  for (const auto& d : run_dirs) runs.push_back(load_run(d));
  const std::string html = render_html(runs);
  const std::string tmp = out_path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) throw InputError(out_path, "cannot write");
    f << html;
    if (!f.flush()) throw InputError(out_path, "write failed");
  }
  if (std::rename(tmp.c_str(), out_path.c_str()) != 0)
    throw InputError(out_path, errno_text("rename"));
}

}  // namespace sparc::report
