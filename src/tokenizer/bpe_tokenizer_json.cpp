// Reading tokenizer.json, GPT-2's vocab.json + merges.txt and the
// tokenizer_config.json beside them into a BpeTokenizer.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/bpe_tokenizer.h"

namespace sparc {

using nlohmann::json;

namespace {

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
      if (specials.contains(slot->key) &&
          !specials[slot->key].value("ids", json::array()).empty()) {
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

  t.add_pre_tokenizer(json{{"type", "ByteLevel"}});  // GPT-2's regex
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
    if (type != "BPE") throw InputError(name_, "model.type is \"" + type + "\"; expected \"BPE\"");
    if (!model.contains("vocab") || !model["vocab"].is_object())
      throw InputError(name_, "model.vocab is missing or not an object");
    if (!model.contains("merges") || !model["merges"].is_array())
      throw InputError(name_, "model.merges is missing or not an array");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
        throw InputError(name_, std::string("model.") + key + " is not supported");
    ignore_merges_ = model.value("ignore_merges", false);
    byte_fallback_ = model.value("byte_fallback", false);
    fuse_unk_ = model.value("fuse_unk", false);

    for (const auto& [piece, id] : model["vocab"].items())
      add_vocab_entry(piece, json_integer(id, name_, "model.vocab id of '" + piece + "'"));
    if (j.contains("added_tokens"))
      for (const json& a : j["added_tokens"])
        add_token(a.at("content").get<std::string>(),
                  json_integer(a.at("id"), name_, "added_tokens id"), a.value("special", false),
                  a.value("lstrip", false), a.value("rstrip", false));

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

    normalizer_ = Normalizer::from_json(j.value("normalizer", json()), name_);
    byte_level_ = false;
    add_pre_tokenizer(j.value("pre_tokenizer", json()));
    // Added tokens are matched on the raw text; Hugging Face matches
    // normalized=true ones on the normalized text, which differs when a
    // normalizer or Metaspace changes the text around them.
    if (j.contains("added_tokens") && (!normalizer_.empty() || metaspace_))
      for (const json& a : j["added_tokens"])
        if (a.value("normalized", !a.value("special", false)))
          throw InputError(name_, "added token '" + a.at("content").get<std::string>() +
                                      "' has normalized=true, which is not supported with a "
                                      "normalizer or Metaspace; expected normalized=false");
    if (!byte_level_) {  // SentencePiece-style: its unknown piece and its decoder
      if (model.contains("unk_token") && !model["unk_token"].is_null()) {
        const std::string unk = model["unk_token"].get<std::string>();
        auto it = vocab_.find(unk);
        if (it == vocab_.end())
          throw InputError(name_, "model.unk_token '" + unk + "' is not in model.vocab");
        unk_ = it->second;
      }
      add_decoder(j.value("decoder", json()));
    }
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

// The decoders that undo a SentencePiece-style encoding; anything else (a
// ByteLevel decoder without ByteLevel pre-tokenizer, say) is refused.
void BpeTokenizer::add_decoder(const json& d) {
  if (d.is_null()) return;
  const std::string type = d.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const json& e : d.at("decoders")) add_decoder(e);
  } else if (type == "Replace" && d.at("pattern").contains("String")) {
    decode_replace_.emplace_back(d["pattern"]["String"].get<std::string>(),
                                 d.at("content").get<std::string>());
  } else if (type == "ByteFallback") {
    decode_byte_fallback_ = true;
  } else if (type == "Metaspace") {  // the replacement back to ' ', the first one dropped
    decode_replace_.emplace_back(d.value("replacement", std::string("\u2581")), " ");
    if (d.value("prepend_scheme", d.value("add_prefix_space", true) ? "always" : "never") !=
        "never")
      decode_strip_ = 1;
  } else if (type == "Fuse") {  // joins the tokens' text, which decode() does anyway
  } else if (type == "Strip" && d.value("content", "") == " " && d.value("stop", 0) == 0) {
    decode_strip_ = d.value("start", 0);
  } else {
    throw InputError(name_, "decoder " + d.dump().substr(0, 120) +
                                " is not supported without a ByteLevel pre-tokenizer; expected "
                                "Replace (a String pattern), ByteFallback, Fuse, Strip (' ', stop "
                                "0), Metaspace or a Sequence of them");
  }
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

}  // namespace sparc
