// Number formats and SVG primitives shared by the report's tables and
// charts (internal to src/report/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sparc::report::detail {

// Viridis (perceptually uniform, colour-blind safe, readable in greyscale).
inline constexpr const char* kViridis[] = {"#440154", "#482475", "#414487", "#355f8d",
                                           "#2a788e", "#21918c", "#22a884", "#44bf70",
                                           "#7ad151", "#bddf26", "#fde725"};

// Fixed decimals; px: one decimal, for coordinates.
std::string num(double v, int decimals);
std::string px(double v);
// Percent of a [0, 1] accuracy, or "n/a".
std::string pct(double v);
// Percentage points of a difference of accuracies, signed.
std::string pts(double v);
// Percentage points, unsigned (forgetting is never negative).
std::string points(double v);
std::string with_thousands(std::int64_t n);

// The viridis colour at t in [0, 1], and the text colour readable on it.
std::string viridis(double t);
const char* ink_on(double t);

// Labels longer than `max` characters are cut (the full text goes in a <title>).
std::string clip(const std::string& s, std::size_t max);
double text_width(const std::string& s, double font);

// Ticks covering [lo, hi] at 1, 2 or 5 times a power of ten, about `n` of them.
std::vector<double> nice_ticks(double lo, double hi, int n = 5);
int tick_decimals(const std::vector<double>& ticks);

std::string svg_open(const std::string& cls, double w, double h, const std::string& label);
std::string text(double x, double y, const std::string& s, const std::string& attrs = "");
// A label cut to `max` characters, the full text as its tooltip.
std::string label(double x, double y, const std::string& s, std::size_t max,
                  const std::string& attrs);
std::string line(double x1, double y1, double x2, double y2, const std::string& attrs);
std::string rect(double x, double y, double w, double h, const std::string& attrs);

}  // namespace sparc::report::detail
