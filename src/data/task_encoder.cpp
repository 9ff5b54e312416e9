#include "data/task_encoder.h"

#include <algorithm>

#include "core/error.h"

namespace sparc {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "'" : ", '") + item + "'";
  return s;
}

// Drops an incomplete UTF-8 sequence at the end of `s`: cutting a field's
// tokens can split a character, and the rendered text should stay valid UTF-8.
void drop_partial_utf8(std::string& s) {
  const std::size_t n = s.size();
  std::size_t i = n;
  while (i > 0 && n - i < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i;
  if (i == 0) return;
  const auto lead = static_cast<unsigned char>(s[i - 1]);
  const std::size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  if (n - (i - 1) < need) s.resize(i - 1);
}

}  // namespace

TaskEncoder::TaskEncoder(const Tokenizer& tok, std::string template_text,
                         std::vector<std::pair<std::string, std::string>> verbalizer,
                         std::string truncate_field, int max_length, std::string where)
    : tok_(tok), truncate_field_(std::move(truncate_field)), max_length_(max_length),
      where_(std::move(where)) {
  // Template: literal text and {field} placeholders; {{ and }} are literal braces.
  const std::string tkey = where_ + ".template";
  const std::string& t = template_text;
  std::string literal;
  auto flush = [&] {
    if (!literal.empty()) segments_.push_back({std::move(literal), -1});
    literal.clear();
  };
  for (std::size_t i = 0; i < t.size(); ++i) {
    const bool doubled = i + 1 < t.size() && t[i + 1] == t[i];
    if (t[i] == '}') {
      if (!doubled)
        throw InputError(tkey, "unmatched '}' at offset " + std::to_string(i) +
                                   "; write '}}' for a literal brace");
      literal += '}';
      ++i;
    } else if (t[i] != '{') {
      literal += t[i];
    } else if (doubled) {
      literal += '{';
      ++i;
    } else {
      const std::size_t close = t.find('}', i + 1);
      if (close == std::string::npos)
        throw InputError(tkey, "unclosed '{' at offset " + std::to_string(i) +
                                   "; write '{{' for a literal brace");
      const std::string name = t.substr(i + 1, close - i - 1);
      if (name.empty() || name.find('{') != std::string::npos)
        throw InputError(tkey, "bad placeholder '{" + name + "}' at offset " + std::to_string(i) +
                                   "; expected {field_name}");
      flush();
      auto it = std::find(fields_.begin(), fields_.end(), name);
      if (it == fields_.end()) it = fields_.insert(fields_.end(), name);
      segments_.push_back({"", static_cast<int>(it - fields_.begin())});
      i = close;
    }
  }
  flush();
  if (fields_.empty())
    throw InputError(tkey, "uses no {field}, so every example would read the same; "
                           "expected at least one placeholder such as {text}");

  if (!truncate_field_.empty() &&
      std::find(fields_.begin(), fields_.end(), truncate_field_) == fields_.end())
    throw InputError(where_ + ".truncate_field", "'" + truncate_field_ +
                                                     "' is not a field of the template, which uses " +
                                                     join(fields_));
  if (max_length_ <= 0)
    throw InputError(where_ + ".max_length",
                     "is " + std::to_string(max_length_) + "; expected a positive number of tokens");

  // Verbalizer: each class is scored by its word's first token, so those must differ.
  const std::string vkey = where_ + ".verbalizer";
  if (verbalizer.size() < 2)
    throw InputError(vkey, "has " + std::to_string(verbalizer.size()) +
                               " label word(s); expected at least 2 classes");
  for (std::size_t c = 0; c < verbalizer.size(); ++c) {
    const auto& [value, word] = verbalizer[c];
    if (value.empty()) throw InputError(vkey, "class " + std::to_string(c) + " has an empty label value");
    if (std::find(label_values_.begin(), label_values_.end(), value) != label_values_.end())
      throw InputError(vkey, "label '" + value + "' appears twice");
    const auto ids = tok_.encode(word);
    if (ids.empty())
      throw InputError(vkey, "label word '" + word + "' (label '" + value +
                                 "') has no tokens; expected a non-empty word");
    for (std::size_t other = 0; other < c; ++other)
      if (label_token_ids_[other] == ids[0])
        throw InputError(vkey, "label words '" + verbalizer[other].second + "' and '" + word +
                                   "' share their first token '" + tok_.piece(ids[0]) + "' (id " +
                                   std::to_string(ids[0]) +
                                   "), so their classes cannot be told apart; choose words whose "
                                   "first tokens differ");
    label_values_.push_back(value);
    label_token_ids_.push_back(ids[0]);
  }
}

TaskEncoder::Values TaskEncoder::lookup(const Example& ex) const {
  Values values;
  for (const auto& name : fields_) {
    auto it = ex.fields.find(name);
    if (it == ex.fields.end()) {
      std::vector<std::string> present;
      for (const auto& kv : ex.fields) present.push_back(kv.first);
      throw InputError(ex.source, "template field '" + name + "' is not in this example, which has " +
                                      (present.empty() ? std::string("no fields") : join(present)));
    }
    values.push_back(&it->second);
  }
  return values;
}

std::string TaskEncoder::render(const Values& values) const {
  std::string text;
  for (const Segment& s : segments_) text += s.field < 0 ? s.literal : *values[s.field];
  return text;
}

std::string TaskEncoder::render(const Example& ex) const { return render(lookup(ex)); }

std::vector<std::int32_t> TaskEncoder::tokenize(const Values& values) const {
  return tok_.encode_with_bos(render(values));
}

int TaskEncoder::class_of(const Example& ex) const {
  if (ex.label.empty()) throw InputError(ex.source, "example has no label");
  auto it = std::find(label_values_.begin(), label_values_.end(), ex.label);
  if (it == label_values_.end())
    throw InputError(ex.source, "label '" + ex.label + "' is not in the verbalizer (expected one of: " +
                                    join(label_values_) + ")");
  return static_cast<int>(it - label_values_.begin());
}

EncodedExample TaskEncoder::encode(const Example& ex) const {
  EncodedExample out;
  out.label = class_of(ex);
  Values values = lookup(ex);
  std::vector<std::vector<std::int32_t>> field_ids;
  for (const std::string* v : values) field_ids.push_back(tok_.encode(*v));
  out.ids = tokenize(values);

  const auto max_length = static_cast<std::size_t>(max_length_);
  std::string cut;  // the shortened field's text; `values` points at it
  if (out.ids.size() > max_length) {
    std::size_t f = 0;
    if (!truncate_field_.empty()) {
      f = std::find(fields_.begin(), fields_.end(), truncate_field_) - fields_.begin();
    } else {
      for (std::size_t i = 1; i < field_ids.size(); ++i)
        if (field_ids[i].size() > field_ids[f].size()) f = i;
    }
    const std::vector<std::int32_t>& all = field_ids[f];
    auto keep = [&](std::size_t n) {  // field f cut to its first n tokens; the ids of the text
      cut = tok_.decode(std::vector<std::int32_t>(all.begin(), all.begin() + n));
      drop_partial_utf8(cut);
      values[f] = &cut;
      return tokenize(values);
    };
    out.ids = keep(0);
    if (out.ids.size() > max_length)
      throw InputError(ex.source, "cannot fit max_length " + std::to_string(max_length_) +
                                      ": the text without field '" + fields_[f] + "' already takes " +
                                      std::to_string(out.ids.size()) + " tokens");
    // Largest n that fits, keeping the invariant: n = lo fits, n = hi does not.
    std::size_t lo = 0, hi = all.size();
    while (hi - lo > 1) {
      const std::size_t mid = lo + (hi - lo) / 2;
      auto ids = keep(mid);
      if (ids.size() <= max_length) {
        lo = mid;
        out.ids = std::move(ids);
      } else {
        hi = mid;
      }
    }
    keep(lo);  // leaves `cut` at the chosen length
    field_ids[f] = tok_.encode(cut);
  }
  for (const auto& ids : field_ids) out.input_ids.insert(out.input_ids.end(), ids.begin(), ids.end());
  return out;
}

}  // namespace sparc
