#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/html_report.h"

namespace sparc::report::detail {

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
std::vector<double> nice_ticks(double lo, double hi, int n) {
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
std::string text(double x, double y, const std::string& s, const std::string& attrs) {
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

}  // namespace sparc::report::detail
