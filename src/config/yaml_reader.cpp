#include "config/yaml_reader.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <set>

#include "config/config_error.h"

namespace sparc {

ConfigError::ConfigError(const std::string& file, std::vector<std::string> problems)
    : InputError(file, "invalid configuration"), problems_(std::move(problems)) {
  text_ = yaml_reader::join(problems_, "\n");
}

namespace yaml_reader {
namespace {

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

}  // namespace

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string s;
  for (std::size_t i = 0; i < items.size(); ++i) s += (i ? sep : "") + items[i];
  return s;
}

bool contains(const std::vector<std::string>& items, const std::string& s) {
  return std::find(items.begin(), items.end(), s) != items.end();
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& choices,
                         const std::string& prefix) {
  const std::string* best = nullptr;
  std::size_t best_distance = 3;
  for (const auto& c : choices) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) best = &c, best_distance = d;
  }
  return best ? " (did you mean '" + prefix + *best + "'?)" : "";
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

std::string format_double(double v) {
  char buf[32];
  auto result = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  return std::string(buf, result.ptr);
}

const std::vector<std::string> kSchedules = {"cosine", "linear", "constant"};
const std::vector<std::string> kCommBackendNames = {"auto", "mpi", "nccl"};

std::string Range::text() const {
  if (std::isinf(hi)) return std::string(lo_open ? "> " : ">= ") + format_double(lo);
  return "in " + std::string(lo_open ? "(" : "[") + format_double(lo) + ", " + format_double(hi) +
         (hi_open ? ")" : "]");
}

// ---- Problems ---------------------------------------------------------------------

const AppliedOverride* Problems::override_for(const std::string& path) const {
  for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it) {
    const std::string& p = it->path;
    if (path.compare(0, p.size(), p) == 0 &&
        (path.size() == p.size() || path[p.size()] == '.' || path[p.size()] == '['))
      return &*it;
  }
  return nullptr;
}

void Problems::throw_if_any() const {
  if (!list_.empty()) throw ConfigError(where_, list_);
}

std::string Problems::location(const YAML::Node& node, const std::string& path) const {
  if (const AppliedOverride* o = override_for(path)) return where_ + " (--set " + o->text + ")";
  if (node.IsDefined() && node.Mark().line >= 0)
    return where_ + ":" + std::to_string(node.Mark().line + 1);
  return where_;
}

// ---- The document -----------------------------------------------------------------

// yaml-cpp passes bytes that are not UTF-8 through and writes them back
// differently, and decodes text with NUL bytes as UTF-16/32, so the resolved
// config (to_yaml) would not read back the same: both are refused.
YAML::Node load_document(const std::string& yaml_text, const std::vector<std::string>& overrides,
                         Problems& problems) {
  const std::string& where = problems.where();
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

// ---- Section ----------------------------------------------------------------------

Section::Section(Problems& problems, const YAML::Node& node, std::string path,
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

YAML::Node Section::get(const std::string& key) const {
  for (const auto& [k, v] : entries_)
    if (k == key) return v;
  return YAML::Node(YAML::NodeType::Undefined);
}

void Section::fail(const std::string& key, const std::string& message) {
  YAML::Node n = get(key);
  problems_.add(n.IsDefined() ? n : node_, path_of(key), message);
}

void Section::read(const std::string& key, double& out, const Range& range) {
  YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  double v = 0;
  if (!n.IsScalar() || !parse_number(n.Scalar(), v) || !range.contains(v)) {
    fail(key, "expected a number " + range.text() + ", got " + describe(n));
    return;
  }
  out = v;
}

void Section::read(const std::string& key, bool& out) {
  YAML::Node n = get(key);
  if (!n.IsDefined()) return;
  if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) {
    out = n.Scalar() == "true";
    return;
  }
  fail(key, "expected true or false, got " + describe(n));
}

bool Section::read(const std::string& key, std::string& out) {
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

void Section::read_device(const std::string& key, std::string& out) {
  std::string device;
  if (!read(key, device)) return;
  std::size_t ordinal = 0;
  if (device == "cpu" || device == "cuda" || device == "auto" ||
      (device.rfind("cuda:", 0) == 0 && parse_number(device.substr(5), ordinal)))
    out = device;
  else
    fail(key, "expected cpu, cuda, cuda:N or auto; got '" + device + "'");
}

void Section::read_choice(const std::string& key, std::string& out,
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

void Section::require(const std::string& key, std::string& out, const std::string& what) {
  // Located at the value when present but empty, else at the enclosing map.
  if (!has(key) || (read(key, out) && out.empty())) fail(key, "required: " + what);
}

void resolve_path(std::string& path, const std::string& key, const std::string& base_dir,
                  const Problems& problems) {
  if (path.empty() || path[0] == '/' || base_dir.empty() || problems.override_for(key)) return;
  path = (std::filesystem::path(base_dir) / path).lexically_normal().string();
}

}  // namespace yaml_reader
}  // namespace sparc
