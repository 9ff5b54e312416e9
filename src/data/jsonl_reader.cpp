#include "data/jsonl_reader.h"

#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"

namespace sparc {
namespace {

using nlohmann::json;

// How a value reads in an error message: scalars as themselves, so a label of
// 1.5 says "found 1.5" rather than "found number".
std::string describe(const json& v) {
  switch (v.type()) {
    case json::value_t::string: return "a string";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    default: return v.dump();
  }
}

// Member `key` of `obj`. `prefix` locates `obj` in the line ("passage."), so
// errors name nested fields in full.
const json& need(const json& obj, const std::string& key, const std::string& source,
                 const std::string& prefix) {
  auto it = obj.find(key);
  if (it == obj.end()) throw InputError(source, "missing field '" + prefix + key + "'");
  return *it;
}

std::string need_string(const json& obj, const std::string& key, const std::string& source,
                        const std::string& prefix = "") {
  const json& v = need(obj, key, source, prefix);
  if (!v.is_string())
    throw InputError(source, "field '" + prefix + key + "' must be a string, found " + describe(v));
  return v.get<std::string>();
}

const json& need_object(const json& v, const std::string& name, const std::string& source) {
  if (!v.is_object())
    throw InputError(source, "field '" + name + "' must be an object, found " + describe(v));
  return v;
}

const json& need_array(const json& v, const std::string& name, const std::string& source) {
  if (!v.is_array())
    throw InputError(source, "field '" + name + "' must be an array, found " + describe(v));
  return v;
}

// Labels as text, so one verbalizer type serves every format.
std::string label_any(const json& obj, const std::string& source) {
  const json& v = need(obj, "label", source, "");
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return v.dump();
  throw InputError(source, "field 'label' must be a string, integer or boolean, found " + describe(v));
}

std::string label_bool(const json& obj, const std::string& source) {
  const json& v = need(obj, "label", source, "");
  if (!v.is_boolean())
    throw InputError(source, "field 'label' must be a boolean, found " + describe(v));
  return v.get<bool>() ? "true" : "false";
}

std::string label_string(const json& obj, const std::string& source) {
  const json& v = need(obj, "label", source, "");
  if (!v.is_string())
    throw InputError(source, "field 'label' must be a string, found " + describe(v));
  return v.get<std::string>();
}

std::string label_01(const json& obj, const std::string& source, const std::string& prefix = "") {
  const json& v = need(obj, "label", source, prefix);
  if (!v.is_number_integer() || (v.get<std::int64_t>() != 0 && v.get<std::int64_t>() != 1))
    throw InputError(source, "field '" + prefix + "label' must be 0 or 1, found " + describe(v));
  return v.dump();
}

using Examples = std::vector<Example>;

void parse_generic(const json& obj, const std::string& source, Examples& out) {
  Example ex{{}, label_any(obj, source), source};
  ex.fields["text"] = need_string(obj, "text", source);
  if (obj.contains("text_b")) ex.fields["text_b"] = need_string(obj, "text_b", source);
  // Extra string fields stay available to templates; the label never is one.
  for (const auto& [key, value] : obj.items())
    if (value.is_string() && key != "label") ex.fields.emplace(key, value.get<std::string>());
  out.push_back(std::move(ex));
}

void parse_boolq(const json& obj, const std::string& source, Examples& out) {
  out.push_back({{{"question", need_string(obj, "question", source)},
                  {"passage", need_string(obj, "passage", source)}},
                 label_bool(obj, source),
                 source});
}

// CB and RTE share their fields; their label sets differ, which the verbalizer checks.
void parse_premise_hypothesis(const json& obj, const std::string& source, Examples& out) {
  out.push_back({{{"premise", need_string(obj, "premise", source)},
                  {"hypothesis", need_string(obj, "hypothesis", source)}},
                 label_string(obj, source),
                 source});
}

void parse_copa(const json& obj, const std::string& source, Examples& out) {
  std::string question = need_string(obj, "question", source);
  if (question != "cause" && question != "effect")
    throw InputError(source, "field 'question' must be \"cause\" or \"effect\", found \"" +
                                 question + "\"");
  out.push_back({{{"premise", need_string(obj, "premise", source)},
                  {"choice1", need_string(obj, "choice1", source)},
                  {"choice2", need_string(obj, "choice2", source)},
                  {"question", question}},
                 label_01(obj, source),
                 source});
}

void parse_wic(const json& obj, const std::string& source, Examples& out) {
  out.push_back({{{"word", need_string(obj, "word", source)},
                  {"sentence1", need_string(obj, "sentence1", source)},
                  {"sentence2", need_string(obj, "sentence2", source)}},
                 label_bool(obj, source),
                 source});
}

void parse_wsc(const json& obj, const std::string& source, Examples& out) {
  const json& target = need_object(need(obj, "target", source, ""), "target", source);
  out.push_back({{{"text", need_string(obj, "text", source)},
                  {"span1_text", need_string(target, "span1_text", source, "target.")},
                  {"span2_text", need_string(target, "span2_text", source, "target.")}},
                 label_bool(obj, source),
                 source});
}

// One line holds a passage with its questions and their candidate answers;
// each answer is a binary example of its own.
void parse_multirc(const json& obj, const std::string& source, Examples& out) {
  const json& passage = need_object(need(obj, "passage", source, ""), "passage", source);
  const std::string text = need_string(passage, "text", source, "passage.");
  const json& questions =
      need_array(need(passage, "questions", source, "passage."), "passage.questions", source);
  for (std::size_t i = 0; i < questions.size(); ++i) {
    const std::string qname = "passage.questions[" + std::to_string(i) + "]";
    const json& q = need_object(questions[i], qname, source);
    const std::string question = need_string(q, "question", source, qname + ".");
    const json& answers = need_array(need(q, "answers", source, qname + "."), qname + ".answers", source);
    for (std::size_t j = 0; j < answers.size(); ++j) {
      const std::string aname = qname + ".answers[" + std::to_string(j) + "]";
      const json& a = need_object(answers[j], aname, source);
      out.push_back({{{"passage", text},
                      {"question", question},
                      {"answer", need_string(a, "text", source, aname + ".")}},
                     label_01(a, source, aname + "."),
                     source});
    }
  }
}

struct Format {
  const char* name;
  void (*parse)(const json& obj, const std::string& source, Examples& out);
};

constexpr Format kFormats[] = {
    {"generic", parse_generic},
    {"boolq", parse_boolq},
    {"cb", parse_premise_hypothesis},
    {"rte", parse_premise_hypothesis},
    {"copa", parse_copa},
    {"wic", parse_wic},
    {"wsc", parse_wsc},
    {"multirc", parse_multirc},
};

std::string format_list() {
  std::string s;
  for (const Format& f : kFormats) s += (s.empty() ? "" : ", ") + std::string(f.name);
  return s;
}

const Format& find_format(const std::string& format, const std::string& path) {
  for (const Format& f : kFormats)
    if (format == f.name) return f;
  if (format == "record")
    throw InputError(path, "data format 'record' (ReCoRD) is not supported: its answers are "
                           "entity spans, not classes a verbalizer can score; supported: " +
                               format_list());
  throw InputError(path, "unknown data format '" + format + "'; expected one of: " + format_list());
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

std::string json_error_text(const std::string& what) {
  auto close = what.find("] ");
  return what.rfind("[json.exception.", 0) == 0 && close != std::string::npos ? what.substr(close + 2)
                                                                              : what;
}

std::vector<std::string> supported_formats() {
  std::vector<std::string> names;
  for (const Format& f : kFormats) names.emplace_back(f.name);
  return names;
}

std::vector<Example> parse_examples(std::string_view text, const std::string& path,
                                    const std::string& format) {
  const Format& fmt = find_format(format, path);
  Examples out;
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (is_blank(line)) continue;
    const std::string source = path + ":" + std::to_string(line_no);
    json obj;
    try {
      obj = json::parse(line);
    } catch (const json::exception& e) {
      // parse_error, and out_of_range for a number too large for a double (1e400).
      throw InputError(source, "invalid JSON: " + json_error_text(e.what()));
    }
    if (!obj.is_object()) throw InputError(source, "expected a JSON object, found " + describe(obj));
    fmt.parse(obj, source, out);
  }
  if (out.empty()) throw InputError(path, "holds no examples; expected JSON Lines in " + format + " format");
  return out;
}

std::vector<Example> read_examples(const std::string& path, const std::string& format) {
  find_format(format, path);  // a bad format name is reported before any file problem
  return parse_examples(read_text_file(path), path, format);
}

}  // namespace sparc
