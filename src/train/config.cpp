#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <tuple>
#include <type_traits>

#include "core/file.h"

namespace sparc {
namespace {

const std::vector<std::string> kMethods = {"sparc", "sparc+lora", "prompt", "lora", "full"};
const std::vector<std::string> kSettings = {"task-incremental", "domain-incremental"};
const std::vector<std::string> kSchedules = {"cosine", "linear", "constant"};
const std::vector<std::string> kFormats = {"generic", "boolq", "cb",  "rte",
                                           "copa",    "wic",   "wsc", "multirc"};
const std::vector<std::string> kDtypes = {"f32", "f16", "bf16"};
const std::vector<std::string> kShardings = {"none", "layer"};
const std::vector<std::string> kCommBackends = {"auto", "mpi", "nccl"};
const std::vector<std::string> kOnWriteError = {"stop", "continue"};
const std::vector<std::string> kLoraTargets = {"q", "k", "v", "o", "gate", "up", "down"};

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + items[i];
  return s;
}

bool contains(const std::vector<std::string>& items, const std::string& s) {
  return std::find(items.begin(), items.end(), s) != items.end();
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean 'x'?)" for the closest choice within 2 edits, else "".
std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices,
                         const std::string& prefix = "") {
  const std::string* best = nullptr;
  std::size_t best_distance = 3;
  for (const auto& c : choices) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) best = &c, best_distance = d;
  }
  return best ? " (did you mean '" + prefix + *best + "'?)" : "";
}

// The offset of the first byte that is not part of valid UTF-8 (overlong
// forms, surrogates and code points past U+10FFFF included) or is NUL, or
// npos. YAML forbids NUL, and yaml-cpp takes NUL bytes near the start of a
// document as UTF-16 or UTF-32 and decodes the rest as such, so the text it
// reads is not the text given.
std::size_t bad_text_at(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = p[i];
    if (c == 0) return i;
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const std::uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n;
  }
  return std::string::npos;
}

// "L:C: what is wrong" for the byte at offset `at` in `text` (see bad_text_at).
std::string text_problem(const std::string& text, std::size_t at) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < at; ++i, ++column)
    if (text[i] == '\n') ++line, column = 0;
  const std::string where = std::to_string(line) + ":" + std::to_string(column) + ": ";
  if (text[at] == '\0') return where + "NUL byte; a config is UTF-8 text without NUL characters";
  char byte[8];
  std::snprintf(byte, sizeof byte, "0x%02X", static_cast<unsigned char>(text[at]));
  return where + "not valid UTF-8 (byte " + byte + "); a config is UTF-8 text";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    default:
      return "nothing";
  }
}

template <typename T>
bool parse_number(std::string text, T& out) {
  if (!text.empty() && text[0] == '+') text.erase(0, 1);  // YAML allows "+3"; from_chars does not
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  if constexpr (std::is_floating_point_v<T>)
    if (ec == std::errc() && !std::isfinite(out)) return false;
  return !text.empty() && ec == std::errc() && ptr == end;
}

std::string format_double(double v) {
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  return std::string(buf, result.ptr);
}

// An interval of valid values for a real-valued setting.
struct Range {
  double lo, hi;
  bool lo_open, hi_open;
  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  std::string text() const {
    if (std::isinf(hi)) return std::string(lo_open ? "> " : ">= ") + format_double(lo);
    return "in " + std::string(lo_open ? "(" : "[") + format_double(lo) + ", " + format_double(hi) +
           (hi_open ? ")" : "]");
  }
};
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr Range kPositive{0, kInf, true, false};
constexpr Range kNonNegative{0, kInf, false, false};
constexpr Range kUnitClosed{0, 1, false, false};
constexpr Range kUnitHalfOpen{0, 1, false, true};

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

  const AppliedOverride* override_for(const std::string& path) const {
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it) {
      const std::string& p = it->path;
      if (path.compare(0, p.size(), p) == 0 &&
          (path.size() == p.size() || path[p.size()] == '.' || path[p.size()] == '['))
        return &*it;
    }
    return nullptr;
  }

  std::vector<AppliedOverride>& overrides() { return overrides_; }
  const std::vector<std::string>& list() const { return list_; }

 private:
  std::string location(const YAML::Node& node, const std::string& path) const {
    if (const AppliedOverride* o = override_for(path)) return where_ + " (--set " + o->text + ")";
    if (node.IsDefined() && node.Mark().line >= 0)
      return where_ + ":" + std::to_string(node.Mark().line + 1);
    return where_;
  }

  std::string where_;
  std::vector<AppliedOverride> overrides_;
  std::vector<std::string> list_;
};

// One YAML map of the config: checks its keys against the allowed ones (all
// keys allowed when `keys` is empty) and reads typed values, reporting every
// problem and keeping the default where a value is bad or absent.
class Section {
 public:
  Section(Problems& problems, const YAML::Node& node, std::string path,
          std::vector<std::string> keys)
      : problems_(problems), node_(node), path_(std::move(path)) {
    if (!node.IsDefined() || node.IsNull()) return;
    if (!node.IsMap()) {
      problems_.add(node, path_, "expected a map, got " + describe(node));
      return;
    }
    std::set<std::string> seen;
    for (const auto& kv : node) {
      const YAML::Node& key_node = kv.first;
      if (!key_node.IsScalar()) {
        problems_.add(key_node, path_, "expected a plain key, got " + describe(key_node));
        continue;
      }
      const std::string& key = key_node.Scalar();
      const std::string full = path_of(key);
      const std::string prefix = path_.empty() ? "" : path_ + ".";
      if (!keys.empty() && !contains(keys, key)) {
        problems_.add_raw(key_node, full,
                          "unknown key '" + full + "'" + did_you_mean(key, keys, prefix));
      } else if (!seen.insert(key).second) {
        // yaml-cpp keeps both entries; which one wins would be an accident.
        problems_.add_raw(key_node, full, "duplicate key '" + full + "'");
      } else {
        entries_.emplace_back(key, kv.second);
      }
    }
  }

  std::string path_of(const std::string& key) const {
    return path_.empty() ? key : path_ + "." + key;
  }
  const YAML::Node& node() const { return node_; }
  const std::vector<std::pair<std::string, YAML::Node>>& entries() const { return entries_; }
  YAML::Node get(const std::string& key) const {
    for (const auto& [k, v] : entries_)
      if (k == key) return v;
    return YAML::Node(YAML::NodeType::Undefined);
  }
  bool has(const std::string& key) const { return get(key).IsDefined(); }

  void fail(const std::string& key, const std::string& message) {
    YAML::Node n = get(key);
    problems_.add(n.IsDefined() ? n : node_, path_of(key), message);
  }

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
  void read(const std::string& key, double& out, const Range& range) {
    YAML::Node n = get(key);
    if (!n.IsDefined()) return;
    double v = 0;
    if (!n.IsScalar() || !parse_number(n.Scalar(), v) || !range.contains(v)) {
      fail(key, "expected a number " + range.text() + ", got " + describe(n));
      return;
    }
    out = v;
  }
  // A string; an empty YAML value ("key:" or "~") is the empty string.
  bool read(const std::string& key, std::string& out) {
    YAML::Node n = get(key);
    if (!n.IsDefined()) return false;
    if (n.IsNull()) {
      out.clear();
    } else if (n.IsScalar()) {
      out = n.Scalar();
    } else {
      fail(key, "expected a string, got " + describe(n));
      return false;
    }
    return true;
  }
  void read_choice(const std::string& key, std::string& out,
                   const std::vector<std::string>& choices) {
    std::string v;
    if (!read(key, v)) return;
    if (!contains(choices, v)) {
      fail(key, "expected one of " + join(choices, ", ") + "; got '" + v + "'" +
                    did_you_mean(v, choices));
      return;
    }
    out = v;
  }
  void require(const std::string& key, std::string& out, const std::string& what) {
    // Located at the value when present but empty, else at the enclosing map.
    if (!has(key) || (read(key, out) && out.empty())) fail(key, "required: " + what);
  }

 private:
  Problems& problems_;
  YAML::Node node_;
  std::string path_;
  std::vector<std::pair<std::string, YAML::Node>> entries_;
};

// Applies one "key.path=value" to the document, creating missing maps.
void apply_override(YAML::Node& root, const std::string& text, Problems& problems) {
  std::size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    problems.add_for_set(text, "expected key.path=value (e.g. train.lr=0.1)");
    return;
  }
  std::string key = text.substr(0, eq);
  const std::string value = text.substr(eq + 1);
  // "tasks[0].name" is accepted as "tasks.0.name".
  std::string dotted;
  for (char ch : key) {
    if (ch == '[')
      dotted += '.';
    else if (ch != ']')
      dotted += ch;
  }
  std::vector<std::string> parts;
  for (std::size_t start = 0;;) {
    std::size_t dot = dotted.find('.', start);
    parts.push_back(dotted.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    problems.add_for_set(text, "bad key path '" + key + "'");
    return;
  }
  YAML::Node value_node;
  try {
    // An empty value means the empty string, which YAML would read as null.
    value_node = value.empty() ? YAML::Node(std::string()) : YAML::Load(value);
  } catch (const YAML::Exception& e) {
    problems.add_for_set(text, "bad value '" + value + "': " + e.msg);
    return;
  }

  if (!root.IsMap()) root.reset(YAML::Node(YAML::NodeType::Map));
  // Walk with reset(): assigning one yaml-cpp Node to another overwrites the
  // node it refers to, which would corrupt the document.
  YAML::Node cur;
  cur.reset(root);
  std::string path;
  std::string created;  // the first map this override created: everything below is its doing
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    const bool last = i + 1 == parts.size();
    YAML::Node next;
    if (cur.IsSequence()) {
      std::size_t index = 0;
      if (!parse_number(part, index) || index >= cur.size()) {
        problems.add_for_set(text, "no element " + path + "[" + part + "]: " + path + " has " +
                                       std::to_string(cur.size()) + " elements");
        return;
      }
      path += "[" + part + "]";
      if (last) {
        cur[index] = value_node;
        break;
      }
      next.reset(cur[index]);
    } else if (cur.IsMap() || cur.IsNull()) {
      path += (path.empty() ? "" : ".") + part;
      if (last) {
        cur[part] = value_node;
        break;
      }
      if (!cur[part].IsDefined() || cur[part].IsNull()) {
        if (created.empty()) created = path;
        cur[part] = YAML::Node(YAML::NodeType::Map);
      }
      next.reset(cur[part]);
    } else {
      problems.add_for_set(text, "'" + path + "' is a single value; it has no '" + part + "'");
      return;
    }
    cur.reset(next);
  }
  problems.overrides().push_back({text, created.empty() ? path : created});
}

void read_model(Section s, ModelSection& m) {
  s.require("path", m.path, "the model (a Hugging Face directory or a llama2.c .bin file)");
  s.read("tokenizer", m.tokenizer);
  s.read_choice("dtype", m.dtype, kDtypes);
  std::string device;
  if (s.read("device", device)) {
    std::size_t ordinal = 0;
    bool ok = device == "cpu" || device == "cuda" ||
              (device.rfind("cuda:", 0) == 0 && parse_number(device.substr(5), ordinal));
    if (ok)
      m.device = device;
    else
      s.fail("device", "expected cpu, cuda or cuda:N; got '" + device + "'");
  }
  s.read_choice("sharding", m.sharding, kShardings);
}

void read_pca(Section s, PcaSection& p) {
  s.read("k", p.k, 1);
  s.read("max_tokens", p.max_tokens, std::int64_t{0});
  std::string source;
  if (!s.read("source", source)) return;
  int layer = -1;
  if (source == "embedding" || source == "mean") {
    p.source = source;
    p.hidden_layer = -1;
  } else if (source.rfind("hidden:", 0) == 0 && parse_number(source.substr(7), layer) &&
             layer >= 0) {
    p.source = "hidden";
    p.hidden_layer = layer;
  } else {
    s.fail("source",
           "expected embedding, mean or hidden:<layer> (layer >= 0); got '" + source + "'");
  }
}

void read_lora(Section s, LoraSection& l, Problems& problems) {
  s.read("rank", l.rank, 1);
  s.read("alpha", l.alpha, kPositive);
  s.read("dropout", l.dropout, kUnitHalfOpen);
  s.read("lr", l.lr, kNonNegative);
  YAML::Node targets = s.get("targets");
  if (!targets.IsDefined()) return;
  const std::string path = s.path_of("targets");
  if (targets.IsNull()) {
    l.targets.clear();
    return;
  }
  if (!targets.IsSequence()) {
    problems.add(targets, path, "expected a list such as [q, v], got " + describe(targets));
    return;
  }
  std::vector<std::string> list;
  bool ok = true;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const YAML::Node t = targets[i];
    const std::string item = path + "[" + std::to_string(i) + "]";
    if (!t.IsScalar() || !contains(kLoraTargets, t.Scalar())) {
      problems.add(t, item,
                   "expected one of " + join(kLoraTargets, ", ") + "; got " + describe(t) +
                       (t.IsScalar() ? did_you_mean(t.Scalar(), kLoraTargets) : ""));
      ok = false;
    } else if (contains(list, t.Scalar())) {
      problems.add(t, item, "'" + t.Scalar() + "' is listed twice");
      ok = false;
    } else {
      list.push_back(t.Scalar());
    }
  }
  if (ok) l.targets = list;
}

void read_train(Section s, TrainSection& t) {
  s.read("epochs", t.epochs, 1);
  s.read("batch_size", t.batch_size, 1);
  s.read("grad_accum", t.grad_accum, 1);
  s.read("lr", t.lr, kPositive);
  s.read("weight_decay", t.weight_decay, kNonNegative);
  s.read("warmup_steps", t.warmup_steps, 0);
  s.read_choice("schedule", t.schedule, kSchedules);
  s.read("max_grad_norm", t.max_grad_norm, kNonNegative);
  s.read("max_length", t.max_length, 1);
  s.read("early_stop_patience", t.early_stop_patience, 0);
  s.read("log_every", t.log_every, 1);
  s.read("lambda_orth", t.lambda_orth, kNonNegative);
  s.read("val_fraction", t.val_fraction, kUnitHalfOpen);
  s.read("max_train_examples", t.max_train_examples, 0);
  s.read("max_bad_steps", t.max_bad_steps, 1);
}

void read_verbalizer(Section& s, TaskSpec& task, Problems& problems) {
  const std::string path = s.path_of("verbalizer");
  Section v(problems, s.get("verbalizer"), path, {});
  if (!s.has("verbalizer")) {
    s.fail("verbalizer", "required: a map of label value -> label word, one per class");
    return;
  }
  if (!v.node().IsMap()) {
    if (v.node().IsNull())
      s.fail("verbalizer", "expected at least 2 classes (label: word), got none");
    return;  // a non-map was reported by Section
  }
  std::vector<std::pair<std::string, std::string>> classes;
  for (const auto& [label, word_node] : v.entries()) {
    const std::string item = v.path_of(label);
    if (!word_node.IsScalar() || word_node.Scalar().empty()) {
      problems.add(word_node, item, "expected a non-empty label word, got " + describe(word_node));
      continue;
    }
    const std::string& word = word_node.Scalar();
    auto same = std::find_if(classes.begin(), classes.end(),
                             [&](const auto& c) { return c.second == word; });
    if (same != classes.end()) {
      problems.add(word_node, path,
                   "labels '" + same->first + "' and '" + label + "' have the same word '" + word +
                       "'; their classes could not be told apart");
      continue;
    }
    classes.emplace_back(label, word);
  }
  if (v.entries().size() < 2)
    problems.add(
        v.node(), path,
        "expected at least 2 classes (label: word), got " + std::to_string(v.entries().size()));
  task.verbalizer = classes;
}

void read_tasks(const YAML::Node& node, std::vector<TaskSpec>& tasks, Problems& problems) {
  if (!node.IsDefined() || node.IsNull() || (node.IsSequence() && node.size() == 0)) {
    problems.add(node, "tasks", "at least one task is required");
    return;
  }
  if (!node.IsSequence()) {
    problems.add(node, "tasks", "expected a list of tasks, got " + describe(node));
    return;
  }
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string path = "tasks[" + std::to_string(i) + "]";
    Section s(problems, node[i], path,
              {"name", "format", "train", "validation", "test", "template", "verbalizer",
               "truncate_field"});
    TaskSpec task;
    if (!node[i].IsMap() && !node[i].IsNull()) {  // reported by Section
      tasks.push_back(task);  // keeps tasks[i] aligned with the YAML list for later messages
      continue;
    }
    s.require("name", task.name, "a unique task name");
    if (task.name.find('/') != std::string::npos)
      s.fail("name", "'" + task.name + "' contains '/'; the name is an HDF5 group in checkpoints");
    for (std::size_t j = 0; j < tasks.size(); ++j)
      if (!task.name.empty() && tasks[j].name == task.name)
        s.fail("name",
               "duplicate task name '" + task.name + "' (also tasks[" + std::to_string(j) + "])");
    s.read_choice("format", task.format, kFormats);
    s.require("train", task.train, "the training data file (JSON Lines)");
    s.read("validation", task.validation);
    s.require("test", task.test, "the test data file (JSON Lines)");
    s.read("template", task.template_text);
    if (task.template_text.empty()) s.fail("template", "expected a non-empty template");
    s.read("truncate_field", task.truncate_field);
    read_verbalizer(s, task, problems);
    tasks.push_back(task);
  }
}

// Checks between settings, once each value has been read.
void check_combinations(const RunConfig& c, const Section& top, Problems& problems) {
  auto node_at = [&](const char* section, const char* key) {
    const YAML::Node s = top.get(section);
    return s.IsMap() && s[key].IsDefined() ? s[key] : s;
  };
  if (c.uses_subspace() && c.pca.k < c.prompt.length)
    problems.add(node_at("pca", "k"), "pca.k",
                 "must be >= prompt.length (" + std::to_string(c.prompt.length) + ") for method '" +
                     c.method + "': the prompt's directions live in the k-dimensional subspace");
  if (c.uses_lora() && c.lora.targets.empty())
    problems.add(node_at("lora", "targets"), "lora.targets",
                 "method '" + c.method + "' needs at least one LoRA target");
  if (!c.uses_subspace() && c.train.lambda_orth > 0)
    problems.add(node_at("train", "lambda_orth"), "train.lambda_orth",
                 "only the sparc methods use it (method is '" + c.method + "')");
  if (c.train.early_stop_patience > 0 && c.train.val_fraction == 0)
    for (std::size_t i = 0; i < c.tasks.size(); ++i)
      if (c.tasks[i].validation.empty()) {
        problems.add(node_at("train", "early_stop_patience"), "train.early_stop_patience",
                     "needs validation data, but tasks[" + std::to_string(i) +
                         "] has no validation file and train.val_fraction is 0");
        break;
      }
  if (c.setting == "domain-incremental" && !c.tasks.empty()) {
    // Routing picks a task per example, so every task must classify into the same classes.
    auto labels = [](const TaskSpec& t) {
      std::vector<std::string> l;
      for (const auto& [label, word] : t.verbalizer) l.push_back(label);
      return l;
    };
    // Tasks whose verbalizer was already reported as too small are left out.
    const YAML::Node tasks = top.get("tasks");
    const TaskSpec* first = nullptr;
    std::size_t first_index = 0;
    for (std::size_t i = 0; i < c.tasks.size(); ++i) {
      if (c.tasks[i].verbalizer.size() < 2) continue;
      if (!first) {
        first = &c.tasks[i], first_index = i;
      } else if (labels(c.tasks[i]) != labels(*first)) {
        problems.add(tasks[i]["verbalizer"], "tasks[" + std::to_string(i) + "].verbalizer",
                     "domain-incremental tasks share one label set: expected labels [" +
                         join(labels(*first), ", ") + "] as in tasks[" +
                         std::to_string(first_index) + "], got [" + join(labels(c.tasks[i]), ", ") +
                         "]");
      }
    }
  }
}

// The document of a config with its overrides applied: UTF-8 and YAML syntax
// are checked first (fatal), override problems are collected. yaml-cpp passes
// bytes that are not UTF-8 through and writes them back differently, and
// decodes text with NUL bytes as UTF-16/32, so the resolved config (to_yaml)
// would not read back the same: both are refused.
YAML::Node load_document(const std::string& yaml_text, const std::string& where,
                         const std::vector<std::string>& overrides, Problems& problems) {
  if (auto at = bad_text_at(yaml_text); at != std::string::npos)
    throw ConfigError(where, {where + ":" + text_problem(yaml_text, at)});
  for (const auto& o : overrides)
    if (auto at = bad_text_at(o); at != std::string::npos)
      throw ConfigError(where, {where + " (--set): " + text_problem(o, at)});
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(where, {where + ":" + std::to_string(e.mark.line + 1) + ":" +
                              std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg});
  }
  if (root.IsDefined() && !root.IsNull() && !root.IsMap())
    throw ConfigError(
        where, {where + ": expected a map of settings at the top level, got " + describe(root)});
  for (const auto& o : overrides) apply_override(root, o, problems);
  return root;
}

void resolve_paths(RunConfig& c, const std::string& base_dir, const Problems& problems) {
  auto resolve = [&](std::string& p, const std::string& key) {
    if (p.empty() || p[0] == '/' || base_dir.empty() || problems.override_for(key)) return;
    p = (std::filesystem::path(base_dir) / p).lexically_normal().string();
  };
  resolve(c.model.path, "model.path");
  if (c.model.tokenizer != "bytes") resolve(c.model.tokenizer, "model.tokenizer");
  resolve(c.eval.ppl_text, "eval.ppl_text");
  resolve(c.checkpoint.dir, "checkpoint.dir");
  for (std::size_t i = 0; i < c.tasks.size(); ++i) {
    const std::string t = "tasks[" + std::to_string(i) + "].";
    resolve(c.tasks[i].train, t + "train");
    resolve(c.tasks[i].validation, t + "validation");
    resolve(c.tasks[i].test, t + "test");
  }
}

}  // namespace

ConfigError::ConfigError(const std::string& file, std::vector<std::string> problems)
    : InputError(file, "invalid configuration"), problems_(std::move(problems)) {
  text_ = join(problems_, "\n");
}

RunConfig parse_run_config(const std::string& yaml_text, const std::string& where,
                           const std::string& base_dir, const std::vector<std::string>& overrides) {
  Problems problems(where);
  YAML::Node root = load_document(yaml_text, where, overrides, problems);

  RunConfig c;
  c.source_path = where;
  Section top(problems, root, "",
              {"method", "setting", "seed", "reuse_threshold", "model", "prompt", "pca", "lora",
               "train", "eval", "comm", "checkpoint", "tasks"});
  top.read_choice("method", c.method, kMethods);
  top.read_choice("setting", c.setting, kSettings);
  top.read("seed", c.seed, std::uint64_t{0});
  top.read("reuse_threshold", c.reuse_threshold, kUnitClosed);

  Section model(problems, top.get("model"), "model",
                {"path", "tokenizer", "dtype", "device", "sharding"});
  read_model(model, c.model);
  if (c.method == "full" && c.model.sharding == "layer")
    model.fail("sharding", "method full trains the weights themselves and cannot shard them; "
                           "use sharding: none (the baseline is plain data parallel)");
  Section(problems, top.get("prompt"), "prompt", {"length"}).read("length", c.prompt.length, 1);
  read_pca(Section(problems, top.get("pca"), "pca", {"k", "source", "max_tokens"}), c.pca);
  read_lora(
      Section(problems, top.get("lora"), "lora", {"rank", "alpha", "dropout", "targets", "lr"}),
      c.lora, problems);
  read_train(Section(problems, top.get("train"), "train",
                     {"epochs", "batch_size", "grad_accum", "lr", "weight_decay", "warmup_steps",
                      "schedule", "max_grad_norm", "max_length", "early_stop_patience", "log_every",
                      "lambda_orth", "val_fraction", "max_train_examples", "max_bad_steps"}),
             c.train);
  Section eval(problems, top.get("eval"), "eval", {"batch_size", "ppl_text", "max_examples"});
  eval.read("batch_size", c.eval.batch_size, 1);
  eval.read("ppl_text", c.eval.ppl_text);
  eval.read("max_examples", c.eval.max_examples, 0);
  Section comm(problems, top.get("comm"), "comm", {"backend", "timeout_s"});
  comm.read_choice("backend", c.comm.backend, kCommBackends);
  comm.read("timeout_s", c.comm.timeout_s, kNonNegative);
  Section ckpt(problems, top.get("checkpoint"), "checkpoint",
               {"dir", "every_steps", "keep", "on_write_error"});
  ckpt.read("dir", c.checkpoint.dir);
  ckpt.read("every_steps", c.checkpoint.every_steps, 0);
  ckpt.read("keep", c.checkpoint.keep, 1);
  ckpt.read_choice("on_write_error", c.checkpoint.on_write_error, kOnWriteError);
  read_tasks(top.get("tasks"), c.tasks, problems);
  check_combinations(c, top, problems);

  if (!problems.list().empty()) throw ConfigError(where, problems.list());
  resolve_paths(c, base_dir, problems);
  return c;
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string text = read_text_file(path);
  const auto dir = std::filesystem::absolute(path).parent_path().lexically_normal();
  return parse_run_config(text, path, dir.string(), overrides);
}

std::string to_yaml(const RunConfig& c) {
  YAML::Emitter out;
  // Strings are always quoted so that values such as "yes", "1" or "{text}"
  // read back as the same strings.
  auto str = [&](const char* key, const std::string& v) {
    out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
  };
  auto num = [&](const char* key, double v) {
    out << YAML::Key << key << YAML::Value << format_double(v);
  };
  auto integer = [&](const char* key, auto v) { out << YAML::Key << key << YAML::Value << v; };
  auto begin = [&](const char* key) { out << YAML::Key << key << YAML::Value << YAML::BeginMap; };

  out << YAML::BeginMap;
  str("method", c.method);
  str("setting", c.setting);
  integer("seed", c.seed);
  num("reuse_threshold", c.reuse_threshold);
  begin("model");
  str("path", c.model.path);
  str("tokenizer", c.model.tokenizer);
  str("dtype", c.model.dtype);
  str("device", c.model.device);
  str("sharding", c.model.sharding);
  out << YAML::EndMap;
  begin("prompt");
  integer("length", c.prompt.length);
  out << YAML::EndMap;
  begin("pca");
  integer("k", c.pca.k);
  str("source",
      c.pca.source == "hidden" ? "hidden:" + std::to_string(c.pca.hidden_layer) : c.pca.source);
  integer("max_tokens", c.pca.max_tokens);
  out << YAML::EndMap;
  begin("lora");
  integer("rank", c.lora.rank);
  num("alpha", c.lora.alpha);
  num("dropout", c.lora.dropout);
  out << YAML::Key << "targets" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& t : c.lora.targets) out << YAML::DoubleQuoted << t;
  out << YAML::EndSeq;
  num("lr", c.lora.lr);
  out << YAML::EndMap;
  begin("train");
  const TrainSection& t = c.train;
  integer("epochs", t.epochs);
  integer("batch_size", t.batch_size);
  integer("grad_accum", t.grad_accum);
  num("lr", t.lr);
  num("weight_decay", t.weight_decay);
  integer("warmup_steps", t.warmup_steps);
  str("schedule", t.schedule);
  num("max_grad_norm", t.max_grad_norm);
  integer("max_length", t.max_length);
  integer("early_stop_patience", t.early_stop_patience);
  integer("log_every", t.log_every);
  num("lambda_orth", t.lambda_orth);
  num("val_fraction", t.val_fraction);
  integer("max_train_examples", t.max_train_examples);
  integer("max_bad_steps", t.max_bad_steps);
  out << YAML::EndMap;
  begin("eval");
  integer("batch_size", c.eval.batch_size);
  str("ppl_text", c.eval.ppl_text);
  integer("max_examples", c.eval.max_examples);
  out << YAML::EndMap;
  begin("comm");
  str("backend", c.comm.backend);
  num("timeout_s", c.comm.timeout_s);
  out << YAML::EndMap;
  begin("checkpoint");
  str("dir", c.checkpoint.dir);
  integer("every_steps", c.checkpoint.every_steps);
  integer("keep", c.checkpoint.keep);
  str("on_write_error", c.checkpoint.on_write_error);
  out << YAML::EndMap;
  out << YAML::Key << "tasks" << YAML::Value << YAML::BeginSeq;
  for (const auto& task : c.tasks) {
    out << YAML::BeginMap;
    str("name", task.name);
    str("format", task.format);
    str("train", task.train);
    str("validation", task.validation);
    str("test", task.test);
    str("template", task.template_text);
    begin("verbalizer");
    for (const auto& [label, word] : task.verbalizer)  // labels too: "true", "0", "~"
      out << YAML::Key << YAML::DoubleQuoted << label << YAML::Value << YAML::DoubleQuoted << word;
    out << YAML::EndMap;
    str("truncate_field", task.truncate_field);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

bool operator==(const ModelSection& a, const ModelSection& b) {
  return std::tie(a.path, a.tokenizer, a.dtype, a.device, a.sharding) ==
         std::tie(b.path, b.tokenizer, b.dtype, b.device, b.sharding);
}
bool operator==(const PromptSection& a, const PromptSection& b) { return a.length == b.length; }
bool operator==(const CommSection& a, const CommSection& b) {
  return a.backend == b.backend && a.timeout_s == b.timeout_s;
}
bool operator==(const CheckpointSection& a, const CheckpointSection& b) {
  return std::tie(a.dir, a.every_steps, a.keep, a.on_write_error) ==
         std::tie(b.dir, b.every_steps, b.keep, b.on_write_error);
}
bool operator==(const PcaSection& a, const PcaSection& b) {
  return std::tie(a.k, a.source, a.hidden_layer, a.max_tokens) ==
         std::tie(b.k, b.source, b.hidden_layer, b.max_tokens);
}
bool operator==(const LoraSection& a, const LoraSection& b) {
  return std::tie(a.rank, a.alpha, a.dropout, a.targets, a.lr) ==
         std::tie(b.rank, b.alpha, b.dropout, b.targets, b.lr);
}
bool operator==(const TrainSection& a, const TrainSection& b) {
  auto fields = [](const TrainSection& t) {
    return std::tie(t.epochs, t.batch_size, t.grad_accum, t.lr, t.weight_decay, t.warmup_steps,
                    t.schedule, t.max_grad_norm, t.max_length, t.early_stop_patience, t.log_every,
                    t.lambda_orth, t.val_fraction, t.max_train_examples, t.max_bad_steps);
  };
  return fields(a) == fields(b);
}
bool operator==(const EvalSection& a, const EvalSection& b) {
  return std::tie(a.batch_size, a.ppl_text, a.max_examples) ==
         std::tie(b.batch_size, b.ppl_text, b.max_examples);
}
bool operator==(const TaskSpec& a, const TaskSpec& b) {
  return std::tie(a.name, a.format, a.train, a.validation, a.test, a.template_text, a.verbalizer,
                  a.truncate_field) == std::tie(b.name, b.format, b.train, b.validation, b.test,
                                                b.template_text, b.verbalizer, b.truncate_field);
}
bool operator==(const RunConfig& a, const RunConfig& b) {
  return std::tie(a.method, a.setting, a.seed, a.reuse_threshold, a.model, a.prompt, a.pca, a.lora,
                  a.train, a.eval, a.comm, a.checkpoint, a.tasks) ==
         std::tie(b.method, b.setting, b.seed, b.reuse_threshold, b.model, b.prompt, b.pca, b.lora,
                  b.train, b.eval, b.comm, b.checkpoint, b.tasks);
}

// ---- sparc pretrain ------------------------------------------------------------

PretrainConfig parse_pretrain_config(const std::string& yaml_text, const std::string& where,
                                     const std::string& base_dir,
                                     const std::vector<std::string>& overrides) {
  Problems problems(where);
  YAML::Node root = load_document(yaml_text, where, overrides, problems);
  PretrainConfig c;
  c.source_path = where;
  Section top(problems, root, "", {"seed", "out", "model", "tokenizer", "tokenizer_vocab", "data", "train"});
  top.read("seed", c.seed, std::uint64_t{0});
  top.require("out", c.out, "the model directory to write");
  top.read_choice("tokenizer", c.tokenizer, {"bytes", "sentencepiece"});
  top.read("tokenizer_vocab", c.tokenizer_vocab, 260);
  if (c.tokenizer == "bytes" && top.has("tokenizer_vocab"))
    top.fail("tokenizer_vocab", "applies to tokenizer: sentencepiece only (bytes has 259 tokens)");
  Section model(problems, top.get("model"), "model",
                {"dim", "layers", "heads", "kv_heads", "ffn", "max_seq_len"});
  model.read("dim", c.dim, std::int64_t{1});
  model.read("layers", c.layers, std::int64_t{1});
  model.read("heads", c.heads, std::int64_t{1});
  model.read("kv_heads", c.kv_heads, std::int64_t{0});
  model.read("ffn", c.ffn, std::int64_t{1});
  model.read("max_seq_len", c.max_seq_len, std::int64_t{1});
  if (c.dim % c.heads != 0 || (c.dim / c.heads) % 2 != 0)
    model.fail("heads", "dim (" + std::to_string(c.dim) + ") must be heads (" +
                            std::to_string(c.heads) + ") times an even head size");
  if (c.kv_heads > 0 && c.heads % c.kv_heads != 0)
    model.fail("kv_heads", "must divide heads (" + std::to_string(c.heads) + ")");
  Section data(problems, top.get("data"), "data", {"text", "val_fraction"});
  YAML::Node text = data.get("text");
  if (text.IsScalar()) {
    c.text.push_back(text.Scalar());
  } else if (text.IsSequence() && text.size() > 0) {
    for (std::size_t k = 0; k < text.size(); ++k) {
      if (!text[k].IsScalar() || text[k].Scalar().empty())
        problems.add(text[k], "data.text[" + std::to_string(k) + "]",
                     "expected a file path, got " + describe(text[k]));
      else
        c.text.push_back(text[k].Scalar());
    }
  } else {
    data.fail("text", "required: a text file (one text per line) or a list of them");
  }
  data.read("val_fraction", c.val_fraction, kUnitHalfOpen);
  Section train(problems, top.get("train"), "train",
                {"steps", "batch_size", "seq_len", "lr", "weight_decay", "warmup_steps", "schedule",
                 "max_grad_norm", "dtype", "log_every", "eval_every"});
  train.read("steps", c.steps, std::int64_t{1});
  train.read("batch_size", c.batch_size, 1);
  train.read("seq_len", c.seq_len, 2);
  train.read("lr", c.lr, kPositive);
  train.read("weight_decay", c.weight_decay, kNonNegative);
  train.read("warmup_steps", c.warmup_steps, 0);
  train.read_choice("schedule", c.schedule, kSchedules);
  train.read("max_grad_norm", c.max_grad_norm, kNonNegative);
  train.read_choice("dtype", c.dtype, {"f32", "bf16"});
  train.read("log_every", c.log_every, 1);
  train.read("eval_every", c.eval_every, 0);
  if (c.seq_len > c.max_seq_len)
    train.fail("seq_len", "is " + std::to_string(c.seq_len) + ", above model.max_seq_len (" +
                              std::to_string(c.max_seq_len) + ")");
  if (!problems.list().empty()) throw ConfigError(where, problems.list());
  auto resolve = [&](std::string& p, const std::string& key) {
    if (p.empty() || p[0] == '/' || base_dir.empty() || problems.override_for(key)) return;
    p = (std::filesystem::path(base_dir) / p).lexically_normal().string();
  };
  resolve(c.out, "out");
  for (std::size_t k = 0; k < c.text.size(); ++k)
    resolve(c.text[k], "data.text[" + std::to_string(k) + "]");
  return c;
}

PretrainConfig load_pretrain_config(const std::string& path,
                                    const std::vector<std::string>& overrides) {
  const std::string text = read_text_file(path);
  const auto dir = std::filesystem::absolute(path).parent_path().lexically_normal();
  return parse_pretrain_config(text, path, dir.string(), overrides);
}

std::string to_yaml(const PretrainConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "seed" << YAML::Value << c.seed;
  out << YAML::Key << "tokenizer" << YAML::Value << YAML::DoubleQuoted << c.tokenizer;
  if (c.tokenizer != "bytes")
    out << YAML::Key << "tokenizer_vocab" << YAML::Value << c.tokenizer_vocab;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "dim" << YAML::Value << c.dim << YAML::Key << "layers" << YAML::Value
      << c.layers << YAML::Key << "heads" << YAML::Value << c.heads << YAML::Key << "kv_heads"
      << YAML::Value << c.kv_heads << YAML::Key << "ffn" << YAML::Value << c.ffn << YAML::Key
      << "max_seq_len" << YAML::Value << c.max_seq_len << YAML::EndMap;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "text" << YAML::Value << YAML::BeginSeq;
  for (const auto& t : c.text) out << YAML::DoubleQuoted << t;
  out << YAML::EndSeq << YAML::Key << "val_fraction" << YAML::Value << format_double(c.val_fraction)
      << YAML::EndMap;
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "steps" << YAML::Value << c.steps << YAML::Key << "batch_size"
      << YAML::Value << c.batch_size << YAML::Key << "seq_len" << YAML::Value << c.seq_len
      << YAML::Key << "lr" << YAML::Value << format_double(c.lr) << YAML::Key << "weight_decay"
      << YAML::Value << format_double(c.weight_decay) << YAML::Key << "warmup_steps"
      << YAML::Value << c.warmup_steps << YAML::Key << "schedule" << YAML::Value << c.schedule
      << YAML::Key << "max_grad_norm" << YAML::Value << format_double(c.max_grad_norm)
      << YAML::Key << "dtype" << YAML::Value << c.dtype << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace sparc
