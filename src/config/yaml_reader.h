// The machinery both config parsers (run, pretrain) are built on: the
// document loader with its --set override engine, the problems collector
// that locates each message, and the typed section reader. Internal to
// src/config: it exposes yaml-cpp.
#pragma once

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace sparc::yaml_reader {

std::string join(const std::vector<std::string>& items, const std::string& sep);
bool contains(const std::vector<std::string>& items, const std::string& s);

// " (did you mean 'x'?)" for the closest choice within 2 edits, else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices,
                         const std::string& prefix = "");

// "'value'", "a list", "a map" or "nothing": what a message says it got.
std::string describe(const YAML::Node& node);

// The whole of `text` as a number (a leading '+' allowed, as in YAML; a
// floating-point value must be finite).
template <typename T>
bool parse_number(std::string text, T& out) {
  if (!text.empty() && text[0] == '+') text.erase(0, 1);  // YAML allows "+3"; from_chars does not
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  if constexpr (std::is_floating_point_v<T>)
    if (ec == std::errc() && !std::isfinite(out)) return false;
  return !text.empty() && ec == std::errc() && ptr == end;
}

// The shortest text that reads back as v.
std::string format_double(double v);

// An interval of valid values for a real-valued setting.
struct Range {
  double lo, hi;
  bool lo_open, hi_open;
  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  std::string text() const;
};
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr Range kPositive{0, kInf, true, false};
constexpr Range kNonNegative{0, kInf, false, false};
constexpr Range kUnitClosed{0, 1, false, false};
constexpr Range kUnitHalfOpen{0, 1, false, true};

// The learning-rate schedules (train.schedule of both configs).
extern const std::vector<std::string> kSchedules;
// comm.backend of both configs (comm/communicator_factory.h).
extern const std::vector<std::string> kCommBackendNames;

// A --set that was applied, with the key path it replaced ("tasks[0].name").
struct AppliedOverride {
  std::string text, path;
};

// Collects problems with their locations. A problem under a key path that an
// override replaced is attributed to that --set, since the file's lines say
// nothing about it.
class Problems {
 public:
  explicit Problems(std::string where) : where_(std::move(where)) {}

  // "location: path: message"; `node` gives the line when it has one.
  void add(const YAML::Node& node, const std::string& path, const std::string& message) {
    add_raw(node, path, path.empty() ? message : path + ": " + message);
  }
  // "location: message", located as if at `path`.
  void add_raw(const YAML::Node& node, const std::string& path, const std::string& text) {
    list_.push_back(location(node, path) + ": " + text);
  }
  void add_for_set(const std::string& set_text, const std::string& message) {
    list_.push_back(where_ + " (--set " + set_text + "): " + message);
  }

  // The latest override that replaced `path` or a key above it, or null.
  const AppliedOverride* override_for(const std::string& path) const;

  std::vector<AppliedOverride>& overrides() { return overrides_; }
  const std::vector<std::string>& list() const { return list_; }
  const std::string& where() const { return where_; }

  // Throws ConfigError with every problem, if there is one.
  void throw_if_any() const;

 private:
  std::string location(const YAML::Node& node, const std::string& path) const;

  std::string where_;
  std::vector<AppliedOverride> overrides_;
  std::vector<std::string> list_;
};

// The document of a config with its overrides applied: UTF-8 and YAML syntax
// are checked first (fatal: ConfigError), override problems are collected.
//
// Overrides are "key.path=value": the value is parsed as YAML (an empty value
// is the empty string), list elements are addressed by index ("tasks.0.name"
// or "tasks[0].name"), missing maps are created.
YAML::Node load_document(const std::string& yaml_text, const std::vector<std::string>& overrides,
                         Problems& problems);

// One YAML map of the config: checks its keys against the allowed ones (all
// keys allowed when `keys` is empty) and reads typed values, reporting every
// problem and keeping the default where a value is bad or absent.
class Section {
 public:
  Section(Problems& problems, const YAML::Node& node, std::string path,
          std::vector<std::string> keys);

  std::string path_of(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  const YAML::Node& node() const { return node_; }
  const std::vector<std::pair<std::string, YAML::Node>>& entries() const { return entries_; }
  YAML::Node get(const std::string& key) const;
  bool has(const std::string& key) const { return get(key).IsDefined(); }

  // A problem at the key's value, or at this map when the key is absent.
  void fail(const std::string& key, const std::string& message);

  template <typename Int>
  void read(const std::string& key, Int& out, Int min) {
    YAML::Node n = get(key);
    if (!n.IsDefined()) return;
    Int v{};
    if (!n.IsScalar() || !parse_number(n.Scalar(), v) || v < min) {
      fail(key, "expected an integer >= " + std::to_string(min) + ", got " + describe(n));
      return;
    }
    out = v;
  }
  void read(const std::string& key, double& out, const Range& range);
  // true or false.
  void read(const std::string& key, bool& out);
  // A string; an empty YAML value ("key:" or "~") is the empty string.
  // Returns whether `out` was set.
  bool read(const std::string& key, std::string& out);
  void read_choice(const std::string& key, std::string& out,
                   const std::vector<std::string>& choices);
  // A device name, model.device of both configs: cpu, cuda, cuda:N or auto.
  void read_device(const std::string& key, std::string& out);
  // A non-empty string; `what` says what the setting is.
  void require(const std::string& key, std::string& out, const std::string& what);

 private:
  Problems& problems_;
  YAML::Node node_;
  std::string path_;
  std::vector<std::pair<std::string, YAML::Node>> entries_;
};

// Makes a relative path absolute against `base_dir`, unless `base_dir` is
// empty or an override set `key` (such paths are taken as written, relative
// to the working directory).
void resolve_path(std::string& path, const std::string& key, const std::string& base_dir,
                  const Problems& problems);

}  // namespace sparc::yaml_reader
