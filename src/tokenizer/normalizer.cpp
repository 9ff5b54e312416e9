#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/error.h"

namespace sparc {

using nlohmann::json;

namespace {

// The end of the run of valid UTF-8 starting at `i` (utf8proc's rules: no
// overlongs, surrogates or code points past U+10FFFF).
std::size_t valid_run_end(std::string_view s, std::size_t i) {
  while (i < s.size()) {
    utf8proc_int32_t c;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                    static_cast<utf8proc_ssize_t>(s.size() - i), &c);
    if (n <= 0) break;
    i += static_cast<std::size_t>(n);
  }
  return i;
}

std::string normalize_valid(std::string_view s, UnicodeForm form) {
  if (s.empty()) return {};
  int options = UTF8PROC_STABLE;
  switch (form) {
    case UnicodeForm::kNfc:
      options |= UTF8PROC_COMPOSE;
      break;
    case UnicodeForm::kNfd:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case UnicodeForm::kNfkc:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case UnicodeForm::kNfkd:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                              static_cast<utf8proc_ssize_t>(s.size()), &out,
                              static_cast<utf8proc_option_t>(options));
  if (n < 0)  // the run was checked valid, so only memory can fail
    throw std::runtime_error(std::string("Unicode normalization: ") + utf8proc_errmsg(n));
  std::string result(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  std::free(out);
  return result;
}

}  // namespace

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  for (std::size_t pos = 0;;) {
    const std::size_t hit = s.find(from, pos);
    out.append(s.substr(pos, hit - pos));
    if (hit == std::string_view::npos) return out;
    out.append(to);
    pos = hit + from.size();
  }
}

std::string unicode_normalize(std::string_view text, UnicodeForm form) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t end = valid_run_end(text, i);
    out += normalize_valid(text.substr(i, end - i), form);
    if (end < text.size()) out += text[end];  // an invalid byte, kept
    i = end + 1;
  }
  return out;
}

Normalizer Normalizer::from_json(const json& normalizer, const std::string& file) {
  Normalizer n;
  n.add(normalizer, file);
  return n;
}

void Normalizer::add(const json& n, const std::string& file) {
  if (n.is_null()) return;
  if (!n.is_object() || !n.contains("type") || !n["type"].is_string())
    throw InputError(
        file, "normalizer is " + n.dump().substr(0, 80) + "; expected an object with a \"type\"");
  const std::string type = n["type"].get<std::string>();
  auto string_of = [&](const char* key) {
    if (!n.contains(key) || !n[key].is_string())
      throw InputError(file, "normalizer " + type + " has no string \"" + key + "\"");
    return n[key].get<std::string>();
  };
  if (type == "Sequence") {
    if (!n.contains("normalizers") || !n["normalizers"].is_array())
      throw InputError(file, "normalizer Sequence has no array \"normalizers\"");
    for (const json& m : n["normalizers"]) add(m, file);
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    const UnicodeForm form = type == "NFC"    ? UnicodeForm::kNfc
                             : type == "NFD"  ? UnicodeForm::kNfd
                             : type == "NFKC" ? UnicodeForm::kNfkc
                                              : UnicodeForm::kNfkd;
    steps_.push_back({Step::Kind::kForm, form, "", ""});
  } else if (type == "Replace") {
    const json& pattern = n.value("pattern", json());
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
        pattern["String"].get<std::string>().empty())
      throw InputError(file, "normalizer Replace with pattern " + pattern.dump() +
                                 " is not supported; expected a non-empty {\"String\": ...}");
    steps_.push_back({Step::Kind::kReplace, UnicodeForm::kNfc, pattern["String"].get<std::string>(),
                      string_of("content")});
  } else if (type == "Prepend") {
    steps_.push_back({Step::Kind::kPrepend, UnicodeForm::kNfc, "", string_of("prepend")});
  } else {
    throw InputError(file, "normalizer " + type +
                               " is not supported; expected NFC, NFD, NFKC, NFKD, Replace (a "
                               "String pattern), Prepend or a Sequence of them");
  }
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::Kind::kForm:
        s = unicode_normalize(s, step.form);
        break;
      case Step::Kind::kReplace:
        s = replace_all(s, step.pattern, step.content);
        break;
      case Step::Kind::kPrepend:  // as Hugging Face: only before non-empty text
        if (!s.empty()) s = step.content + s;
        break;
    }
  }
  return s;
}

}  // namespace sparc
