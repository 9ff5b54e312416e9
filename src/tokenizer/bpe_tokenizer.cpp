#include "tokenizer/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <limits>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/error.h"
#include "core/file.h"

namespace sparc {

using nlohmann::json;

namespace {

// GPT-2's pre-tokenizer: contractions, letter runs, digit runs, other symbols,
// each with one optional leading space; whitespace before a word stays with it.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Guards allocations against absurd ids in a malformed file; real vocabularies
// stay below 300k.
constexpr std::int64_t kMaxId = (1 << 24) - 1;

// The length of the valid UTF-8 sequence (RFC 3629: no overlongs, surrogates
// or code points above U+10FFFF, as PCRE2 requires) starting at s[i], or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b = at(i);
  if (b < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() - i < n || at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if ((at(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {  // the byte map stays far below U+10000
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// GPT-2's byte-to-unicode map: bytes that are printable Latin-1 characters
// stand for themselves; the others (controls, space, DEL, NBSP, soft hyphen)
// are moved, in byte order, to U+0100 onwards, so every token is printable.
struct ByteMap {
  std::array<std::string, 256> chars;     // byte -> its character in UTF-8
  std::array<std::int16_t, 512> byte_of;  // character -> byte, or -1

  ByteMap() {
    byte_of.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      char32_t c = printable ? static_cast<char32_t>(b) : next++;
      append_utf8(chars[b], c);
      byte_of[c] = static_cast<std::int16_t>(b);
    }
  }

  // The bytes a token spells, or nullopt when it holds a character outside
  // the map (then Hugging Face decodes the token's text as it is).
  std::optional<std::string> decode(std::string_view piece) const {
    std::string out;
    for (std::size_t i = 0; i < piece.size();) {
      std::size_t n = utf8_length(piece, i);
      if (n == 0 || n > 2) return std::nullopt;  // the map's characters are < U+0800
      char32_t c = n == 1 ? static_cast<unsigned char>(piece[i])
                          : ((piece[i] & 0x1F) << 6) | (piece[i + 1] & 0x3F);
      if (c >= byte_of.size() || byte_of[c] < 0) return std::nullopt;
      out += static_cast<char>(byte_of[c]);
      i += n;
    }
    return out;
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
         static_cast<std::uint32_t>(right);
}

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

std::string directory_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

json parse_json(std::string_view text, const std::string& name) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw InputError(name, std::string("malformed JSON: ") + e.what());
  }
}

// A special token named in a tokenizer_config.json: a string, an object with
// "content" (an AddedToken), or null.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const json& v = config[key];
  return v.is_object() ? v.at("content").get<std::string>() : v.get<std::string>();
}

}  // namespace

// ---- Pre-tokenizer regexes -----------------------------------------------------

struct BpeTokenizer::Regex {
  struct CodeFree {
    void operator()(pcre2_code* c) const { pcre2_code_free(c); }
  };
  struct MatchDataFree {
    void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
  };
  std::unique_ptr<pcre2_code, CodeFree> code;
  std::string pattern;

  // UTF + UCP: \p{L}, \s and (?i) follow Unicode, as in Hugging Face's engine.
  // `literal`: a Split pre-tokenizer's String pattern, matched as it is
  // (PCRE2 rejects UCP alongside LITERAL; it has no classes to affect).
  Regex(const std::string& source, bool literal, const std::string& file) : pattern(source) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                             PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP), &error, &offset,
                             nullptr));
    if (!code)
      throw InputError(file, "pre-tokenizer pattern '" + pattern + "' does not compile: " +
                                 message(error) + " at offset " + std::to_string(offset));
    pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);  // on failure the interpreter runs
  }

  static std::string message(int error) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(error, buf, sizeof buf);
    return reinterpret_cast<const char*>(buf);
  }

  // Hugging Face's "Isolated" split: every match is a piece and so is every
  // stretch of text between matches. `text` must be valid UTF-8.
  template <typename Emit>
  void split(std::string_view text, Emit&& emit) const {
    std::unique_ptr<pcre2_match_data, MatchDataFree> match(
        pcre2_match_data_create_from_pattern(code.get(), nullptr));
    if (!match) throw std::bad_alloc();
    std::size_t start = 0, gap = 0;  // next search position; start of unmatched text
    while (start < text.size()) {
      int rc = pcre2_match(code.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                           start, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0)  // resource limits only: the pattern compiled and the text is valid
        throw std::runtime_error("pre-tokenizer pattern '" + pattern + "': " + message(rc));
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
      if (ov[1] <= ov[0]) {  // an empty match is no piece: search again one character on
        start = std::max<std::size_t>(ov[0], start) + 1;
        while (start < text.size() && (text[start] & 0xC0) == 0x80) ++start;
        continue;
      }
      if (ov[0] > gap) emit(text.substr(gap, ov[0] - gap));
      emit(text.substr(ov[0], ov[1] - ov[0]));
      gap = start = ov[1];
    }
    if (gap < text.size()) emit(text.substr(gap));
  }
};

namespace {

using RegexPtr = std::shared_ptr<const BpeTokenizer::Regex>;

// Flattens the pre-tokenizer into regex stages. ByteLevel must come last: the
// stages run on the raw text, which is what earlier stages see.
void parse_pre_tokenizer(const json& p, const std::string& file, std::vector<RegexPtr>& stages,
                         bool& byte_level) {
  if (p.is_null())
    throw InputError(file,
                     "pre_tokenizer is null; expected a ByteLevel pre-tokenizer "
                     "(only byte-level BPE is supported)");
  const std::string type = p.at("type").get<std::string>();
  if (byte_level)
    throw InputError(file, "pre-tokenizer " + type + " follows ByteLevel; expected ByteLevel last");
  if (type == "Sequence") {
    for (const json& q : p.at("pretokenizers")) parse_pre_tokenizer(q, file, stages, byte_level);
  } else if (type == "ByteLevel") {
    if (p.value("add_prefix_space", false))
      throw InputError(file,
                       "ByteLevel add_prefix_space=true is not supported (decode could "
                       "not restore the text)");
    if (p.value("use_regex", true))
      stages.push_back(std::make_shared<BpeTokenizer::Regex>(kGpt2Pattern, false, file));
    byte_level = true;
  } else if (type == "Split") {
    const std::string behavior = p.value("behavior", "");
    if (behavior != "Isolated" || p.value("invert", false))
      throw InputError(file, "Split pre-tokenizer with behavior '" + behavior + "' (invert " +
                                 (p.value("invert", false) ? "true" : "false") +
                                 ") is not supported; expected \"Isolated\", not inverted");
    const json& pattern = p.at("pattern");
    bool literal = !pattern.contains("Regex");
    stages.push_back(std::make_shared<BpeTokenizer::Regex>(
        pattern.at(literal ? "String" : "Regex").get<std::string>(), literal, file));
  } else if (type == "Digits") {
    // Hugging Face isolates ASCII digits: each one, or each run of them.
    stages.push_back(std::make_shared<BpeTokenizer::Regex>(
        p.value("individual_digits", false) ? "[0-9]" : "[0-9]+", false, file));
  } else {
    throw InputError(file, "pre-tokenizer " + type +
                               " is not supported; expected ByteLevel, Split, Digits or a "
                               "Sequence of them");
  }
}

// NFC is accepted without being applied (see the header); everything else
// would change the text in ways this class does not reproduce.
void check_normalizer(const json& n, const std::string& file) {
  if (n.is_null()) return;
  const std::string type = n.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const json& m : n.at("normalizers")) check_normalizer(m, file);
  } else if (type != "NFC") {
    throw InputError(file, "normalizer " + type + " is not supported; expected none or NFC");
  }
}

// An integer of the file: nlohmann's get<std::int64_t>() would convert a float
// without a word (and one out of range with undefined behaviour).
std::int64_t json_integer(const json& v, const std::string& name, const std::string& what) {
  if (!v.is_number_integer())
    throw InputError(name, what + " is " + v.dump() + "; expected an integer");
  if (v.is_number_unsigned() &&
      v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    throw InputError(name, what + " " + v.dump() + " is too large");
  return v.get<std::int64_t>();
}

// A special token of a TemplateProcessing post-processor: its key in the
// template and, when its special_tokens entry gives one, its id.
struct TemplateToken {
  std::string key;
  std::optional<std::int32_t> id;
};

// The special tokens the post-processor puts before and after the text ($A)
// of a single sequence: BOS and EOS.
void template_specials(const json& pp, std::optional<TemplateToken>& before,
                       std::optional<TemplateToken>& after, const std::string& name) {
  if (pp.is_null()) return;
  const std::string type = pp.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const json& q : pp.at("processors")) template_specials(q, before, after, name);
    return;
  }
  if (type != "TemplateProcessing") return;
  const json specials = pp.value("special_tokens", json::object());
  bool seen_text = false;
  for (const json& item : pp.at("single")) {
    if (item.contains("Sequence")) {
      seen_text = true;
    } else if (item.contains("SpecialToken")) {
      auto& slot = seen_text ? after : before;
      if (slot) continue;
      slot = TemplateToken{item["SpecialToken"].at("id").get<std::string>(), std::nullopt};
      if (specials.contains(slot->key) && !specials[slot->key].value("ids", json::array()).empty()) {
        const std::int64_t id = json_integer(specials[slot->key]["ids"][0], name,
                                             "post_processor id of '" + slot->key + "'");
        if (id < 0 || id > std::numeric_limits<std::int32_t>::max())
          throw InputError(name, "post_processor id " + std::to_string(id) + " of '" + slot->key +
                                     "' is out of range");
        slot->id = static_cast<std::int32_t>(id);
      }
    }
  }
}

}  // namespace

// ---- Loading --------------------------------------------------------------------

BpeTokenizer BpeTokenizer::from_tokenizer_json(const std::string& path) {
  BpeTokenizer t;
  t.name_ = path;
  t.parse_tokenizer_json(read_text_file(path));
  t.read_config_beside(path);
  return t;
}

BpeTokenizer BpeTokenizer::from_tokenizer_json_text(std::string_view json_text,
                                                    const std::string& name) {
  BpeTokenizer t;
  t.name_ = name;
  t.parse_tokenizer_json(json_text);
  return t;
}

BpeTokenizer BpeTokenizer::from_vocab_merges(const std::string& vocab_path,
                                             const std::string& merges_path) {
  BpeTokenizer t;
  t.name_ = vocab_path;
  json vocab = parse_json(read_text_file(vocab_path), vocab_path);
  if (!vocab.is_object())
    throw InputError(vocab_path, "expected a JSON object of token -> id (GPT-2 vocab.json)");
  for (const auto& [piece, id] : vocab.items()) {
    if (!id.is_number_integer())
      throw InputError(vocab_path, "id of token '" + piece + "' is not an integer");
    t.add_vocab_entry(piece, id.get<std::int64_t>());
  }

  const std::string merges = read_text_file(merges_path);
  std::size_t line_no = 0;
  std::int32_t rank = 0;
  for (std::size_t pos = 0; pos < merges.size();) {
    std::size_t end = std::min(merges.find('\n', pos), merges.size());
    std::string_view line(merges.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.substr(0, 8) == "#version")) continue;
    std::size_t space = line.find(' ');
    if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos)
      throw InputError(merges_path, "line " + std::to_string(line_no) + " is '" +
                                        std::string(line) + "'; expected two tokens 'a b'");
    t.add_merge(std::string(line.substr(0, space)), std::string(line.substr(space + 1)), rank++,
                merges_path, "line " + std::to_string(line_no));
  }

  t.splitters_.push_back(std::make_shared<Regex>(kGpt2Pattern, false, vocab_path));
  // Hugging Face's GPT-2 tokenizers treat <|endoftext|> as a special token.
  if (auto it = t.vocab_.find("<|endoftext|>"); it != t.vocab_.end())
    t.add_token(it->first, it->second, true, false, false);
  t.finish();
  t.read_config_beside(vocab_path);
  return t;
}

void BpeTokenizer::parse_tokenizer_json(std::string_view text) {
  json j = parse_json(text, name_);
  try {
    if (!j.is_object() || !j.contains("model"))
      throw InputError(name_, "has no \"model\"; expected a Hugging Face tokenizer.json");
    const json& model = j["model"];
    const std::string type = model.value("type", "");
    if (type != "BPE")
      throw InputError(name_, "model.type is \"" + type + "\"; expected \"BPE\" (byte-level BPE)");
    if (!model.contains("vocab") || !model["vocab"].is_object())
      throw InputError(name_, "model.vocab is missing or not an object");
    if (!model.contains("merges") || !model["merges"].is_array())
      throw InputError(name_, "model.merges is missing or not an array");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
        throw InputError(name_,
                         std::string("model.") + key + " is not supported in byte-level BPE");
    ignore_merges_ = model.value("ignore_merges", false);

    for (const auto& [piece, id] : model["vocab"].items())
      add_vocab_entry(piece, json_integer(id, name_, "model.vocab id of '" + piece + "'"));
    if (j.contains("added_tokens"))
      for (const json& a : j["added_tokens"])
        add_token(a.at("content").get<std::string>(),
                  json_integer(a.at("id"), name_, "added_tokens id"),
                  a.value("special", false), a.value("lstrip", false), a.value("rstrip", false));

    const json& merges = model["merges"];
    for (std::size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      const auto rank = static_cast<std::int32_t>(i);
      const std::string where = "model.merges[" + std::to_string(i) + "]";
      if (m.is_array() && m.size() == 2) {  // newer files: [left, right]
        add_merge(m[0].get<std::string>(), m[1].get<std::string>(), rank, name_, where);
        continue;
      }
      const std::string s = m.is_string() ? m.get<std::string>() : m.dump();
      std::size_t space = s.find(' ');
      if (!m.is_string() || space == std::string::npos ||
          s.find(' ', space + 1) != std::string::npos)
        throw InputError(name_, where + " is " + m.dump() + "; expected \"a b\" or [\"a\", \"b\"]");
      add_merge(s.substr(0, space), s.substr(space + 1), rank, name_, where);
    }

    check_normalizer(j.value("normalizer", json()), name_);
    bool byte_level = false;
    parse_pre_tokenizer(j.value("pre_tokenizer", json()), name_, splitters_, byte_level);
    if (!byte_level)
      throw InputError(name_,
                       "has no ByteLevel pre-tokenizer; only byte-level BPE is supported "
                       "(for SentencePiece models use tokenizer.model)");
    finish();

    std::optional<TemplateToken> before, after;
    template_specials(j.value("post_processor", json()), before, after, name_);
    auto resolve = [&](const TemplateToken& t) {
      std::optional<std::int32_t> id = t.id ? t.id : find_id(t.key);
      if (!id) throw InputError(name_, "post-processor token '" + t.key + "' is not a token");
      check_id(*id);
      return *id;
    };
    if (before) bos_ = resolve(*before);
    if (after) eos_ = resolve(*after);
  } catch (const json::exception& e) {
    throw InputError(name_, std::string("unexpected content: ") + e.what());
  }
}

void BpeTokenizer::add_vocab_entry(const std::string& piece, std::int64_t id) {
  if (id < 0 || id > kMaxId)
    throw InputError(name_, "token '" + piece + "' has id " + std::to_string(id) +
                                "; expected 0.." + std::to_string(kMaxId));
  if (static_cast<std::size_t>(id) >= pieces_.size()) {
    pieces_.resize(id + 1);
    kinds_.resize(id + 1, Kind::kUnused);
  }
  if (kinds_[id] != Kind::kUnused)
    throw InputError(name_, "id " + std::to_string(id) + " is given to both '" + pieces_[id] +
                                "' and '" + piece + "'");
  pieces_[id] = piece;
  kinds_[id] = Kind::kModel;
  vocab_.emplace(piece, static_cast<std::int32_t>(id));
}

void BpeTokenizer::add_token(const std::string& content, std::int64_t id, bool special, bool lstrip,
                             bool rstrip) {
  if (id < 0 || id > kMaxId)
    throw InputError(name_, "added token '" + content + "' has id " + std::to_string(id) +
                                "; expected 0.." + std::to_string(kMaxId));
  if (static_cast<std::size_t>(id) >= pieces_.size()) {
    pieces_.resize(id + 1);
    kinds_.resize(id + 1, Kind::kUnused);
  }
  // An added token may repeat a vocabulary entry (GPT-2's <|endoftext|>); it
  // then takes over that id, as in Hugging Face.
  pieces_[id] = content;
  kinds_[id] = special ? Kind::kSpecial : Kind::kAdded;
  if (!content.empty()) added_.push_back({content, static_cast<std::int32_t>(id), lstrip, rstrip});
}

void BpeTokenizer::add_merge(const std::string& left, const std::string& right, std::int32_t rank,
                             const std::string& file, const std::string& where) {
  auto find = [&](const std::string& piece) {
    auto it = vocab_.find(piece);
    if (it == vocab_.end())
      throw InputError(file, where + " ('" + left + " " + right + "'): token '" + piece +
                                 "' is not in the vocabulary");
    return it->second;
  };
  const std::int32_t left_id = find(left), right_id = find(right), merged_id = find(left + right);
  // A repeated pair takes its last rank, as in Hugging Face and GPT-2's encoder.py.
  merges_[pair_key(left_id, right_id)] = Merge{rank, merged_id};
}

std::optional<std::int32_t> BpeTokenizer::find_id(const std::string& content) const {
  for (const AddedToken& a : added_)
    if (a.content == content) return a.id;
  if (auto it = vocab_.find(content); it != vocab_.end()) return it->second;
  return std::nullopt;
}

void BpeTokenizer::finish() {
  const ByteMap& map = byte_map();
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(map.chars[b]);
    if (it == vocab_.end()) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", b);
      throw InputError(name_, std::string("has no token for byte ") + hex + " ('" + map.chars[b] +
                                  "'); byte-level BPE needs all 256 byte tokens");
    }
    byte_ids_[b] = it->second;
  }
  bytes_.assign(pieces_.size(), std::string());
  for (std::size_t id = 0; id < pieces_.size(); ++id) {
    if (kinds_[id] == Kind::kModel) bytes_[id] = map.decode(pieces_[id]).value_or(pieces_[id]);
    if (kinds_[id] == Kind::kAdded)
      bytes_[id] = pieces_[id];  // matched as raw text, so decoded as such
  }
  // Longest first, so a scan takes the longest token at each position.
  std::stable_sort(added_.begin(), added_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() > b.content.size();
  });
  for (const AddedToken& a : added_) starts_added_[static_cast<unsigned char>(a.content[0])] = true;
}

void BpeTokenizer::read_config_beside(const std::string& path) {
  const std::string config_path = directory_of(path) + "/tokenizer_config.json";
  if ((!bos_ || !eos_) && file_exists(config_path)) {
    json config = parse_json(read_text_file(config_path), config_path);
    auto take = [&](const char* key, std::optional<std::int32_t>& slot) {
      if (slot) return;  // the post-processor's choice wins: it is what Hugging Face encodes
      auto content = config_token(config, key);
      if (!content) return;
      slot = find_id(*content);
      if (!slot)
        throw InputError(config_path,
                         std::string(key) + " '" + *content + "' is not a token of " + name_);
    };
    try {
      if (!config.is_object()) throw InputError(config_path, "expected a JSON object");
      take("bos_token", bos_);
      take("eos_token", eos_);
    } catch (const json::exception& e) {
      throw InputError(config_path, std::string("unexpected content: ") + e.what());
    }
  }
  if (!eos_) eos_ = find_id("<|endoftext|>");  // GPT-2 ships no config naming it
}

void BpeTokenizer::check_id(std::int32_t id) const {
  if (id < 0 || id >= vocab_size())
    throw InputError(name_, "token id " + std::to_string(id) + " is out of range; expected 0.." +
                                std::to_string(vocab_size() - 1));
  if (kinds_[id] == Kind::kUnused)
    throw InputError(name_, "token id " + std::to_string(id) + " is not assigned to any token");
}

std::string BpeTokenizer::piece(std::int32_t id) const {
  check_id(id);
  return pieces_[id];
}

// ---- Encoding -------------------------------------------------------------------

std::vector<std::int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> ids;
  std::size_t plain = 0;  // start of the text not yet encoded
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!starts_added_[static_cast<unsigned char>(text[i])]) continue;
    auto it = std::find_if(added_.begin(), added_.end(), [&](const AddedToken& a) {
      return text.compare(i, a.content.size(), a.content) == 0;
    });
    if (it == added_.end()) continue;
    std::size_t begin = i, end = i + it->content.size();
    if (it->lstrip)
      while (begin > plain && is_ascii_space(text[begin - 1])) --begin;
    if (it->rstrip)
      while (end < text.size() && is_ascii_space(text[end])) ++end;
    encode_text(text.substr(plain, begin - plain), ids);
    ids.push_back(it->id);
    plain = end;
    i = end - 1;
  }
  encode_text(text.substr(plain), ids);
  return ids;
}

// PCRE2 must only see valid UTF-8 (it is told not to check), so the text is
// cut into valid runs, pre-tokenized as usual, and runs of invalid bytes,
// each encoded as one piece.
void BpeTokenizer::encode_text(std::string_view text, std::vector<std::int32_t>& ids) const {
  for (std::size_t i = 0; i < text.size();) {
    std::size_t valid_end = i, n;
    while (valid_end < text.size() && (n = utf8_length(text, valid_end)) > 0) valid_end += n;
    if (valid_end > i) pre_tokenize(text.substr(i, valid_end - i), 0, ids);
    std::size_t invalid_end = valid_end;
    while (invalid_end < text.size() && utf8_length(text, invalid_end) == 0) ++invalid_end;
    if (invalid_end > valid_end) encode_piece(text.substr(valid_end, invalid_end - valid_end), ids);
    i = invalid_end;
  }
}

void BpeTokenizer::pre_tokenize(std::string_view text, std::size_t stage,
                                std::vector<std::int32_t>& ids) const {
  if (stage == splitters_.size()) {
    encode_piece(text, ids);
    return;
  }
  splitters_[stage]->split(text,
                           [&](std::string_view piece) { pre_tokenize(piece, stage + 1, ids); });
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<std::int32_t>& ids) const {
  if (ignore_merges_) {  // a piece that is a token is taken whole
    std::string word;
    for (char c : piece) word += byte_map().chars[static_cast<unsigned char>(c)];
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  std::vector<std::int32_t> word(piece.size());
  for (std::size_t i = 0; i < piece.size(); ++i)
    word[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
  merge(word);
  ids.insert(ids.end(), word.begin(), word.end());
}

// Applies the lowest-ranked merge among adjacent pairs, the leftmost on ties,
// until none applies, as Hugging Face does: a heap of candidate pairs over a
// linked list of tokens, dropping candidates whose tokens have changed.
void BpeTokenizer::merge(std::vector<std::int32_t>& word) const {
  const auto n = static_cast<std::int32_t>(word.size());
  if (n < 2) return;
  struct Candidate {
    std::int32_t rank;
    std::int32_t left, right;  // positions in `word`
    std::int32_t left_id, right_id, merged_id;
  };
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> heap(later);
  std::vector<std::int32_t> next(n), prev(n);
  for (std::int32_t i = 0; i < n; ++i) {
    next[i] = i + 1;  // n: none
    prev[i] = i - 1;  // -1: none
  }
  auto consider = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right >= n) return;
    auto it = merges_.find(pair_key(word[left], word[right]));
    if (it != merges_.end())
      heap.push({it->second.rank, left, right, word[left], word[right], it->second.id});
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  constexpr std::int32_t kRemoved = -1;
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    if (word[c.left] != c.left_id || next[c.left] != c.right || word[c.right] != c.right_id)
      continue;  // stale: one side has merged since this pair was seen
    word[c.left] = c.merged_id;
    word[c.right] = kRemoved;
    next[c.left] = next[c.right];
    if (next[c.left] < n) prev[next[c.left]] = c.left;
    consider(prev[c.left], c.left);
    consider(c.left, next[c.left]);
  }
  word.erase(std::remove(word.begin(), word.end(), kRemoved), word.end());
}

// ---- Decoding -------------------------------------------------------------------

std::string BpeTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string text;
  for (std::int32_t id : ids) {
    check_id(id);
    text += bytes_[id];
  }
  return text;
}

}  // namespace sparc
