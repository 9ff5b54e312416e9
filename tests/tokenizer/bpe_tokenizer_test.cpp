#include "tokenizer/bpe_tokenizer.h"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "test_util.h"

namespace sparc {
namespace {

using nlohmann::json;
using Ids = std::vector<std::int32_t>;

const char* const kGpt2Dir = "tokenizers/gpt2";

// The GPT-2 and Llama 3 pre-tokenizer patterns, as their files spell them.
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

template <typename F>
void expect_input_error(F&& f, const std::string& where, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected InputError containing '" << needle << "'";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where(), where);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// GPT-2's byte-to-unicode table, rebuilt here from its definition: printable
// Latin-1 bytes stand for themselves, the other 68 bytes take U+0100.. in order.
std::string byte_char(int byte) {
  int code = byte;
  if (!((byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || byte >= 174)) {
    code = 256;
    for (int b = 0; b < byte; ++b)
      if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) ++code;
  }
  std::string out;
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
  return out;
}

// ---- An independent reference for ASCII text ------------------------------
// GPT-2's pattern split by hand (no regex engine), then GPT-2's encoder.py
// merge loop: find the lowest-ranked adjacent pair by rescanning all pairs,
// merge every occurrence of it left to right, repeat.

std::vector<std::string> ref_split_ascii(const std::string& s) {
  auto letter = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; };
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  auto other = [&](char c) { return !letter(c) && !digit(c) && !space(c); };
  std::vector<std::string> out;
  for (std::size_t i = 0, n = s.size(); i < n;) {
    auto run = [&](std::size_t j, auto&& in_class) {
      while (j < n && in_class(s[j])) ++j;
      return j;
    };
    std::size_t j = 0;
    for (const char* c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"})
      if (j == 0 && s.compare(i, std::strlen(c), c) == 0) j = i + std::strlen(c);
    std::size_t k = i + (s[i] == ' ' && i + 1 < n ? 1 : 0);  // the optional leading space
    if (j == 0 && letter(s[k])) j = run(k, letter);
    if (j == 0 && digit(s[k])) j = run(k, digit);
    if (j == 0 && other(s[k])) j = run(k, other);
    if (j == 0) {
      j = run(i, space);            // \s+ ...
      if (j < n && j - 1 > i) --j;  // ... (?!\S): leave the last space to the word
    }
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

struct RefBpe {
  std::map<std::string, int> vocab;
  std::map<std::pair<std::string, std::string>, int> ranks;

  RefBpe(const std::string& vocab_path, const std::string& merges_path) {
    std::ifstream vin(vocab_path);
    const json parsed = json::parse(vin);
    for (const auto& [k, v] : parsed.items()) vocab[k] = v.get<int>();
    std::ifstream min(merges_path);
    std::string line;
    std::getline(min, line);  // #version
    for (int rank = 0; std::getline(min, line);)
      if (auto sp = line.find(' '); sp != std::string::npos)
        ranks.emplace(std::make_pair(line.substr(0, sp), line.substr(sp + 1)), rank++);
  }

  // The ids of pieces split by hand (any bytes).
  Ids encode_pieces(const std::vector<std::string>& pieces) const {
    Ids ids;
    for (const auto& piece : pieces) {
      std::vector<std::string> w;
      for (unsigned char c : piece) w.push_back(byte_char(c));
      for (;;) {
        int best = -1;
        std::pair<std::string, std::string> best_pair;
        for (std::size_t i = 0; i + 1 < w.size(); ++i) {
          auto it = ranks.find({w[i], w[i + 1]});
          if (it != ranks.end() && (best < 0 || it->second < best)) {
            best = it->second;
            best_pair = it->first;
          }
        }
        if (best < 0) break;
        std::vector<std::string> merged;
        for (std::size_t i = 0; i < w.size(); ++i) {
          if (i + 1 < w.size() && w[i] == best_pair.first && w[i + 1] == best_pair.second) {
            merged.push_back(w[i] + w[i + 1]);
            ++i;
          } else {
            merged.push_back(w[i]);
          }
        }
        w = merged;
      }
      for (const auto& t : w) ids.push_back(vocab.at(t));
    }
    return ids;
  }

  Ids encode_ascii(const std::string& text) const { return encode_pieces(ref_split_ascii(text)); }
};

std::vector<std::string> random_ascii_texts() {
  const std::vector<std::string> parts = {
      "the", " cat",  " sat", "Hello", " world", "don't", "I'll", " they're", "'s",
      "'",   "12345", "3.14", " 42",   "  ",     "   ",   "\n",   "\n\n",     "\t",
      ",",   "!?",    "x",    "ing",   " ",      "--",    "ABC"};
  std::mt19937 rng(7);
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) {
    std::string s;
    for (int k = 0, n = 1 + static_cast<int>(rng() % 10); k < n; ++k)
      s += parts[rng() % parts.size()];
    texts.push_back(s);
  }
  return texts;
}

// Texts from the task's list plus more scripts; all valid UTF-8.
std::vector<std::string> sample_texts() {
  return {"Hello world",
          "a  b",
          "trailing spaces   ",
          "\n\n",
          "line one\nline two\n",
          "don't",
          "I'll",
          "they're",
          "12345",
          "café",
          "日本語",
          "emoji 😀🎉👍🏽",
          "  leading",
          "tabs\tand\t\ttabs",
          "x   \ny",
          "It's 3.14159, isn't it?",
          "naïve résumé über straße",
          "Ελληνικά και русский",
          "٣٤٥ and Ⅻ",
          "'S don'T",
          "",
          " ",
          "\r\n",
          "a\u00A0b"};
}

// Invalid UTF-8: stray continuation bytes, truncated sequences, overlongs,
// surrogates, bytes that never occur.
std::vector<std::string> invalid_utf8_texts() {
  return {"\x80",
          "abc\200def",
          "a\xC3",
          "\xE6\x97",
          "\xFF\xFE",
          "\xC0\xAF",
          "\xED\xA0\x80",
          "ok \xE6\x97\xA5\xA5 fin",
          "\xF0\x9F\x98\x80\x80\x80",
          std::string("a\0b", 3)};
}

// ---- The real GPT-2 vocabulary ----------------------------------------------

class Gpt2 : public ::testing::Test {
 protected:
  void SetUp() override {
    SPARC_REQUIRE_SHARED(std::string(kGpt2Dir) + "/vocab.json");
    dir_ = test::shared_dir() + "/" + kGpt2Dir;
    tok_ = std::make_unique<BpeTokenizer>(
        BpeTokenizer::from_vocab_merges(dir_ + "/vocab.json", dir_ + "/merges.txt"));
  }

  // A tokenizer.json holding the same vocabulary, as Hugging Face writes GPT-2's.
  json tokenizer_json(bool pair_merges) const {
    std::ifstream vin(dir_ + "/vocab.json");
    json vocab = json::parse(vin);
    json merges = json::array();
    std::ifstream min(dir_ + "/merges.txt");
    std::string line;
    std::getline(min, line);  // #version
    while (std::getline(min, line)) {
      if (line.empty()) continue;
      auto sp = line.find(' ');
      if (pair_merges)
        merges.push_back({line.substr(0, sp), line.substr(sp + 1)});
      else
        merges.push_back(line);
    }
    return {{"version", "1.0"},
            {"added_tokens",
             {{{"id", 50256},
               {"content", "<|endoftext|>"},
               {"single_word", false},
               {"lstrip", false},
               {"rstrip", false},
               {"normalized", true},
               {"special", true}}}},
            {"normalizer", nullptr},
            {"pre_tokenizer",
             {{"type", "ByteLevel"},
              {"add_prefix_space", false},
              {"trim_offsets", true},
              {"use_regex", true}}},
            {"post_processor",
             {{"type", "ByteLevel"},
              {"add_prefix_space", true},
              {"trim_offsets", false},
              {"use_regex", true}}},
            {"decoder",
             {{"type", "ByteLevel"},
              {"add_prefix_space", true},
              {"trim_offsets", true},
              {"use_regex", true}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", ""},
              {"end_of_word_suffix", ""},
              {"fuse_unk", false},
              {"vocab", vocab},
              {"merges", merges}}}};
  }

  std::string dir_;
  std::unique_ptr<BpeTokenizer> tok_;
};

TEST_F(Gpt2, KnownIdsFromTheReadme) {
  EXPECT_EQ(tok_->encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(tok_->encode("The quick brown fox jumps over the lazy dog."),
            (Ids{464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13}));
}

// Expected ids from an independent stdlib-only Python transcription of GPT-2's
// encoder.py, run over the shared vocab.json/merges.txt: its pattern split by
// hand with unicodedata categories (\p{L} = "L*", \p{N} = "N*"), the byte map
// from its definition, and encoder.py's rescanning min-rank merge loop. It
// reproduces the README's two known encodings.
TEST_F(Gpt2, MatchesPythonReference) {
  const std::vector<std::pair<std::string, Ids>> cases = {
      {"a  b", {64, 220, 275}},  // "a", " ", " b": the last space joins the word
      {"trailing spaces   ", {9535, 4386, 9029, 220, 220, 220}},
      {"\n\n", {628}},
      {"line one\nline two\n", {1370, 530, 198, 1370, 734, 198}},
      {"don't", {9099, 470}},
      {"I'll", {40, 1183}},
      {"they're", {9930, 821}},
      {"12345", {10163, 2231}},  // one digit run "12345", which BPE cuts as "123" "45"
      {"café", {66, 1878, 2634}},
      {"日本語", {33768, 98, 17312, 105, 45739, 252}},
      {"emoji 😀🎉👍🏽",
       {368, 31370, 30325, 222, 8582, 236, 231, 41840, 235, 8582, 237, 121}},
      {"  leading", {220, 3756}},
      {"tabs\tand\t\ttabs", {8658, 82, 197, 392, 197, 197, 8658, 82}},
      {"x   \ny", {87, 220, 220, 220, 198, 88}},
      {"It's 3.14159, isn't it?", {1026, 338, 513, 13, 1415, 19707, 11, 2125, 470, 340, 30}},
      {"naïve résumé über straße",
       {2616, 38776, 40560, 16345, 2634, 6184, 120, 527, 3534, 39683, 68}},
      {"Ελληνικά και русский",
       {138, 243,   39377, 39377, 138,   115,   26180, 29945, 43000, 138,   105, 7377,
        118, 17394, 29945, 220,   21169, 35072, 21727, 21727, 31583, 18849, 140, 117}},
      {"٣٤٥ and Ⅻ",
       {149, 96, 149, 97, 149, 98, 290, 2343, 227, 104}},  // \p{N}: Arabic-Indic, Roman
      {"'S don'T", {6, 50, 836, 6, 51}},  // GPT-2's contractions are case-sensitive
      // Unicode whitespace (NBSP, ideographic space) is \s: one piece per space here.
      {"a\u00A0\u00A0b", {64, 1849, 1849, 65}},
      {"x\u3000\u3000y", {87, 5099, 222, 5099, 222, 88}},
      // Equal pairs: the leftmost merges first ("====" "=", not "=" "====").
      {"=====", {1421, 28}},
      {"aaaaaaa", {24794, 46071}},
      {"lolololol", {47288, 349, 349, 349}},
  };
  for (const auto& [text, ids] : cases) EXPECT_EQ(tok_->encode(text), ids) << text;
}

TEST_F(Gpt2, MatchesHandSplitReferenceOnAsciiText) {
  RefBpe ref(dir_ + "/vocab.json", dir_ + "/merges.txt");
  for (const auto& s : random_ascii_texts()) EXPECT_EQ(tok_->encode(s), ref.encode_ascii(s)) << s;
}

TEST_F(Gpt2, RoundTrips) {
  for (const auto& s : sample_texts()) EXPECT_EQ(tok_->decode(tok_->encode(s)), s) << s;
  for (const auto& s : random_ascii_texts()) EXPECT_EQ(tok_->decode(tok_->encode(s)), s) << s;
}

TEST_F(Gpt2, VocabularyAndSpecialTokens) {
  EXPECT_EQ(tok_->vocab_size(), 50257);
  EXPECT_EQ(tok_->bos_id(), std::nullopt);
  EXPECT_EQ(tok_->eos_id(), 50256);
  EXPECT_EQ(tok_->piece(995), "\xC4\xA0world");  // "Ġworld": the space is U+0120
  EXPECT_EQ(tok_->piece(50256), "<|endoftext|>");
  // The special token is matched in the text and decodes to nothing.
  EXPECT_EQ(tok_->encode("Hello<|endoftext|> world"), (Ids{15496, 50256, 995}));
  EXPECT_EQ(tok_->decode({15496, 50256, 995}), "Hello world");
  EXPECT_EQ(tok_->encode_with_bos("Hello"), (Ids{15496}));  // no BOS
  expect_input_error([&] { tok_->decode({50257}); }, dir_ + "/vocab.json",
                     "token id 50257 is out of range; expected 0..50256");
  expect_input_error([&] { tok_->piece(-1); }, dir_ + "/vocab.json", "out of range");
}

TEST_F(Gpt2, InvalidUtf8IsLossless) {
  for (const auto& s : invalid_utf8_texts()) EXPECT_EQ(tok_->decode(tok_->encode(s)), s) << s;
  // By design each run of invalid bytes is a piece of its own and the valid
  // text around it is split as usual; the pieces below are split by hand.
  // A surrogate, an overlong and a code point above U+10FFFF are invalid too,
  // so the space before them stays a piece of its own.
  RefBpe ref(dir_ + "/vocab.json", dir_ + "/merges.txt");
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"abc\200def", {"abc", "\x80", "def"}},
      {"\xC3\xA9\xE6\x97 x", {"\xC3\xA9", "\xE6\x97", " x"}},  // é, a cut-off 日, " x"
      {" \xED\xA0\x80", {" ", "\xED\xA0\x80"}},                // U+D800
      {" \xC0\xAF", {" ", "\xC0\xAF"}},                        // overlong '/'
      {" \xF4\x90\x80\x80", {" ", "\xF4\x90\x80\x80"}},        // U+110000
      {" \xE6\x97\xA5", {" \xE6\x97\xA5"}},                    // valid " 日": one piece
  };
  for (const auto& [text, pieces] : cases) EXPECT_EQ(tok_->encode(text), ref.encode_pieces(pieces));
}

TEST_F(Gpt2, LongTextIsFastAndRoundTrips) {
  std::string text;
  for (const auto& s : sample_texts()) text += s + " ";
  std::string big;
  while (big.size() < 1000000) big += text;
  big += std::string(100000, ' ') + "x" + std::string(100000, '\n');  // long whitespace runs
  auto start = std::chrono::steady_clock::now();
  auto ids = tok_->encode(big);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(tok_->decode(ids), big);
  EXPECT_LT(seconds, 10.0);  // about 1 s unoptimized; catches quadratic behaviour
}

TEST_F(Gpt2, TokenizerJsonGivesTheSameIds) {
  const std::string dir = test::make_temp_dir();
  for (bool pairs : {false, true}) {
    const std::string path = dir + (pairs ? "/pairs.json" : "/strings.json");
    write_file(path, tokenizer_json(pairs).dump());
    BpeTokenizer t = BpeTokenizer::from_tokenizer_json(path);
    EXPECT_EQ(t.vocab_size(), 50257);
    EXPECT_EQ(t.eos_id(), 50256);  // <|endoftext|>, as for vocab.json
    EXPECT_EQ(t.bos_id(), std::nullopt);
    for (const auto& s : sample_texts()) EXPECT_EQ(t.encode(s), tok_->encode(s)) << s;
    for (const auto& s : random_ascii_texts()) EXPECT_EQ(t.encode(s), tok_->encode(s)) << s;
    std::remove(path.c_str());
  }
  // The same pattern given by a Split, as Llama 3 and Qwen2 files do.
  json j = tokenizer_json(false);
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", kGpt2Pattern}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  BpeTokenizer split = BpeTokenizer::from_tokenizer_json_text(j.dump(), "split.json");
  for (const auto& s : sample_texts()) EXPECT_EQ(split.encode(s), tok_->encode(s)) << s;
  std::remove(dir.c_str());
}

TEST_F(Gpt2, LoadTokenizerFindsTheFiles) {
  auto from_dir = load_tokenizer(dir_);
  EXPECT_EQ(from_dir->encode("Hello world"), (Ids{15496, 995}));
  auto from_file = load_tokenizer(dir_ + "/vocab.json");
  EXPECT_EQ(from_file->encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(from_file->eos_id(), 50256);
}

// ---- A hand-made Llama-3-style tokenizer.json ----------------------------------
// Ids 0..255 are the byte tokens (id = byte), then a few merges; the expected
// ids below are worked out by hand from this table.

const std::vector<std::pair<std::string, std::string>> kTinyMerges = {
    {"3", "4"},   // rank 0 -> "34"   (id 256)
    {"1", "2"},   // rank 1 -> "12"   (257)
    {"12", "3"},  // rank 2 -> "123"  (258)
    {"4", "5"},   // rank 3 -> "45"   (259)
    {"'", "S"},   // rank 4 -> "'S"   (260)
    {"'S", "E"},  // rank 5 -> "'SE"  (261)
    {"I", "T"},   // rank 6 -> "IT"   (262)
    {"E", "L"},   // rank 7 -> "EL"   (263)
    {"EL", "F"},  // rank 8 -> "ELF"  (264)
};

json tiny_json(const std::string& pattern) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  int id = 256;
  json merges = json::array();
  for (const auto& [l, r] : kTinyMerges) {
    vocab[l + r] = id++;
    merges.push_back({l, r});
  }
  vocab["xyz"] = id++;  // 265: a token no merge builds (see ignore_merges)
  auto added = [](int added_id, const char* content, bool special) {
    return json{{"id", added_id},  {"content", content},  {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", false}, {"special", special}};
  };
  return {
      {"added_tokens",
       {added(300, "<|begin_of_text|>", true), added(301, "<|eot_id|>", true),
        added(302, "<extra>", false), added(303, "<a>", true), added(304, "<a>b", true)}},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", pattern}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"trim_offsets", true},
           {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"model", {{"type", "BPE"}, {"ignore_merges", false}, {"vocab", vocab}, {"merges", merges}}}};
}

json llama3_template() {
  return {{"type", "TemplateProcessing"},
          {"single",
           {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
          {"pair", json::array()},
          {"special_tokens",
           {{"<|begin_of_text|>",
             {{"id", "<|begin_of_text|>"}, {"ids", {300}}, {"tokens", {"<|begin_of_text|>"}}}}}}};
}

BpeTokenizer tiny(const json& j) {
  return BpeTokenizer::from_tokenizer_json_text(j.dump(), "tiny.json");
}

TEST(BpeTiny, Llama3PatternSplitsDigitsInThrees) {
  // \p{N}{1,3}: "123" "45" -> merges 1+2, 12+3 and 4+5.
  EXPECT_EQ(tiny(tiny_json(kLlama3Pattern)).encode("12345"), (Ids{258, 259}));
  // GPT-2's pattern keeps "12345" whole: 3+4 (rank 0) first -> 1 2 34 5, then
  // 1+2 -> 12 34 5; no merge joins 12 and 34.
  EXPECT_EQ(tiny(tiny_json(kGpt2Pattern)).encode("12345"), (Ids{257, 256, '5'}));
  // "123" "456" "7": 4+5 is the only merge in "456".
  EXPECT_EQ(tiny(tiny_json(kLlama3Pattern)).encode("1234567"), (Ids{258, 259, '6', '7'}));
}

TEST(BpeTiny, Llama3ContractionsIgnoreCase) {
  // (?i:'s) takes "'S" before [^\r\n\p{L}\p{N}]?\p{L}+ could take "'SELF":
  // "IT" "'S" "ELF".
  EXPECT_EQ(tiny(tiny_json(kLlama3Pattern)).encode("IT'SELF"), (Ids{262, 260, 264}));
  // Without (?i), "'SELF" stays one piece: ' S -> 'S, 'S E -> 'SE, then L F.
  std::string cased = kLlama3Pattern;
  cased.replace(0, 4, "(?:");
  EXPECT_EQ(tiny(tiny_json(cased)).encode("IT'SELF"), (Ids{262, 261, 'L', 'F'}));
  // GPT-2's case-sensitive pattern: "IT" "'" "SELF" -> S, ELF.
  EXPECT_EQ(tiny(tiny_json(kGpt2Pattern)).encode("IT'SELF"), (Ids{262, '\'', 'S', 264}));
}

TEST(BpeTiny, AddedTokensAreMatchedLiterally) {
  BpeTokenizer t = tiny(tiny_json(kLlama3Pattern));
  EXPECT_EQ(t.vocab_size(), 305);
  EXPECT_EQ(t.encode("<|begin_of_text|>IT<|eot_id|><extra>!"), (Ids{300, 262, 301, 302, '!'}));
  // Special tokens decode to nothing, the non-special one to its text.
  EXPECT_EQ(t.decode({300, 262, 301, 302, '!'}), "IT<extra>!");
  // An incomplete one is ordinary text: "<|" "eot", no merges apply.
  EXPECT_EQ(t.encode("<|eot"), (Ids{'<', '|', 'e', 'o', 't'}));
  // The longest token at a position wins: "<a>b" over "<a>".
  EXPECT_EQ(t.encode("<a>bc<a>"), (Ids{304, 'c', 303}));
  EXPECT_EQ(t.piece(301), "<|eot_id|>");
}

TEST(BpeTiny, AddedTokensStripWhitespace) {
  json j = tiny_json(kLlama3Pattern);
  j["added_tokens"][1]["rstrip"] = true;  // <|eot_id|> takes the whitespace after it
  j["added_tokens"][2]["lstrip"] = true;  // <extra> takes the whitespace before it
  BpeTokenizer t = tiny(j);
  EXPECT_EQ(t.encode("IT <extra>"), (Ids{262, 302}));
  EXPECT_EQ(t.encode("<|eot_id|> \n IT"), (Ids{301, 262}));
  // The space went to <|eot_id|>; <extra> finds none left.
  EXPECT_EQ(t.encode("<|eot_id|> <extra>"), (Ids{301, 302}));
  EXPECT_EQ(tiny(tiny_json(kLlama3Pattern)).encode("IT <extra>"), (Ids{262, ' ', 302}));
}

TEST(BpeTiny, RepeatedMergeTakesItsLastRank) {
  // "3 4" again after every other merge: as in Hugging Face, the later rank
  // counts, so "12345" (GPT-2 pattern: one piece) merges 1+2, 12+3, 4+5.
  json j = tiny_json(kGpt2Pattern);
  j["model"]["merges"].push_back({"3", "4"});
  EXPECT_EQ(tiny(j).encode("12345"), (Ids{258, 259}));
}

TEST(BpeTiny, InvalidUtf8IsNeverJoinedToValidText) {
  // Merges of a space with lead bytes show whether the regex saw the space and
  // the bytes after it as one piece (" " + a non-letter, or " " + letters),
  // which only valid UTF-8 may be.
  json j = tiny_json(kGpt2Pattern);
  const std::vector<int> leads = {0xC3, 0xC0, 0xE0, 0xED, 0xF0, 0xF4};
  for (std::size_t i = 0; i < leads.size(); ++i) {
    j["model"]["vocab"][byte_char(' ') + byte_char(leads[i])] = 270 + static_cast<int>(i);
    j["model"]["merges"].push_back({byte_char(' '), byte_char(leads[i])});
  }
  BpeTokenizer t = tiny(j);
  // Valid: é, अ (U+0905), 한 (U+D55C), 😀, U+10FFFF.
  EXPECT_EQ(t.encode(" \xC3\xA9"), (Ids{270, 0xA9}));
  EXPECT_EQ(t.encode(" \xE0\xA4\x85"), (Ids{272, 0xA4, 0x85}));
  EXPECT_EQ(t.encode(" \xED\x95\x9C"), (Ids{273, 0x95, 0x9C}));
  EXPECT_EQ(t.encode(" \xF0\x9F\x98\x80"), (Ids{274, 0x9F, 0x98, 0x80}));
  EXPECT_EQ(t.encode(" \xF4\x8F\xBF\xBF"), (Ids{275, 0x8F, 0xBF, 0xBF}));
  // Invalid: overlong 2-, 3- and 4-byte forms, a surrogate, U+110000.
  EXPECT_EQ(t.encode(" \xC0\xAF"), (Ids{' ', 0xC0, 0xAF}));
  EXPECT_EQ(t.encode(" \xE0\x80\xAF"), (Ids{' ', 0xE0, 0x80, 0xAF}));
  EXPECT_EQ(t.encode(" \xED\xA0\x80"), (Ids{' ', 0xED, 0xA0, 0x80}));
  EXPECT_EQ(t.encode(" \xF0\x80\x80\xAF"), (Ids{' ', 0xF0, 0x80, 0x80, 0xAF}));
  EXPECT_EQ(t.encode(" \xF4\x90\x80\x80"), (Ids{' ', 0xF4, 0x90, 0x80, 0x80}));
}

TEST(BpeTiny, IgnoreMergesTakesWholeTokens) {
  json j = tiny_json(kLlama3Pattern);
  EXPECT_EQ(tiny(j).encode("xyz"), (Ids{'x', 'y', 'z'}));  // no merge builds "xyz"
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(tiny(j).encode("xyz"), (Ids{265}));
  EXPECT_EQ(tiny(j).encode("xyzx"), (Ids{'x', 'y', 'z', 'x'}));
}

TEST(BpeTiny, DigitsPreTokenizer) {
  // SmolLM's form: each digit isolated, then GPT-2's pattern.
  json j = tiny_json(kLlama3Pattern);
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Digits"}, {"individual_digits", true}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  EXPECT_EQ(tiny(j).encode("12345"), (Ids{'1', '2', '3', '4', '5'}));
  j["pre_tokenizer"]["pretokenizers"][0]["individual_digits"] = false;
  EXPECT_EQ(tiny(j).encode("a12345"), (Ids{'a', 257, 256, '5'}));  // as GPT-2: one run
}

TEST(BpeTiny, SplitPatterns) {
  json j = tiny_json(kLlama3Pattern);
  json& split = j["pre_tokenizer"]["pretokenizers"][0];
  // A String pattern is literal: "." splits only at the dot.
  split["pattern"] = {{"String", "."}};
  EXPECT_EQ(tiny(j).encode("12.3"), (Ids{257, '.', '3'}));
  // The same as a Regex matches every character.
  split["pattern"] = {{"Regex", "."}};
  EXPECT_EQ(tiny(j).encode("12.3"), (Ids{'1', '2', '.', '3'}));
  // Empty matches make no pieces: "3*" cuts "12334" into "12" "33" "4";
  // whole, it would merge 3+4, 1+2, 12+3 into "123" "34".
  split["pattern"] = {{"Regex", "3*"}};
  EXPECT_EQ(tiny(j).encode("12334"), (Ids{257, '3', '3', '4'}));
  split["pattern"] = {{"Regex", "x"}};
  EXPECT_EQ(tiny(j).encode("12334"), (Ids{258, 256}));
}

TEST(BpeTiny, BosFromTemplateProcessing) {
  json j = tiny_json(kLlama3Pattern);
  j["post_processor"] = llama3_template();
  BpeTokenizer t = tiny(j);
  EXPECT_EQ(t.bos_id(), 300);
  EXPECT_EQ(t.eos_id(), std::nullopt);
  EXPECT_EQ(t.encode_with_bos("IT"), (Ids{300, 262}));
  // Llama 3.1 wraps it in a Sequence; a token after $A is the EOS.
  json tpl = llama3_template();
  tpl["single"].push_back({{"SpecialToken", {{"id", "<|eot_id|>"}, {"type_id", 0}}}});
  j["post_processor"] = {
      {"type", "Sequence"},
      {"processors", {{{"type", "ByteLevel"}, {"add_prefix_space", false}}, tpl}}};
  t = tiny(j);
  EXPECT_EQ(t.bos_id(), 300);
  EXPECT_EQ(t.eos_id(), 301);  // not in special_tokens: looked up by content
  // With several, the first on each side of $A counts.
  json more = llama3_template();
  more["single"] = {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                    {{"SpecialToken", {{"id", "<a>"}, {"type_id", 0}}}},
                    {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                    {{"SpecialToken", {{"id", "<|eot_id|>"}, {"type_id", 0}}}},
                    {{"SpecialToken", {{"id", "<a>"}, {"type_id", 0}}}}};
  j["post_processor"] = more;
  t = tiny(j);
  EXPECT_EQ(t.bos_id(), 300);
  EXPECT_EQ(t.eos_id(), 301);
}

TEST(BpeTiny, BosEosFromTokenizerConfig) {
  const std::string dir = test::make_temp_dir();
  write_file(dir + "/tokenizer.json", tiny_json(kLlama3Pattern).dump());
  write_file(dir + "/tokenizer_config.json",
             R"({"bos_token": {"content": "<|begin_of_text|>", "special": true},
                 "eos_token": "<|eot_id|>", "model_max_length": 8192})");
  auto t = load_tokenizer(dir);
  EXPECT_EQ(t->bos_id(), 300);
  EXPECT_EQ(t->eos_id(), 301);
  EXPECT_EQ(t->encode_with_bos("IT"), (Ids{300, 262}));

  // The post-processor's BOS wins over the config's; the EOS still comes from it.
  json j = tiny_json(kLlama3Pattern);
  j["post_processor"] = llama3_template();
  j["post_processor"]["single"][0]["SpecialToken"]["id"] = "<a>";
  j["post_processor"]["special_tokens"] = json::object();
  write_file(dir + "/tokenizer.json", j.dump());
  t = load_tokenizer(dir + "/tokenizer.json");
  EXPECT_EQ(t->bos_id(), 303);
  EXPECT_EQ(t->eos_id(), 301);

  write_file(dir + "/tokenizer_config.json", R"({"bos_token": null, "eos_token": "<nope>"})");
  expect_input_error([&] { load_tokenizer(dir); }, dir + "/tokenizer_config.json",
                     "eos_token '<nope>' is not a token of " + dir + "/tokenizer.json");
  write_file(dir + "/tokenizer_config.json", "{oops");
  expect_input_error([&] { load_tokenizer(dir); }, dir + "/tokenizer_config.json",
                     "malformed JSON");
  for (const char* f : {"/tokenizer.json", "/tokenizer_config.json"})
    std::remove((dir + f).c_str());
  std::remove(dir.c_str());
}

TEST(BpeTiny, RoundTripsAndInvalidUtf8) {
  BpeTokenizer t = tiny(tiny_json(kLlama3Pattern));
  for (const auto& s : sample_texts()) EXPECT_EQ(t.decode(t.encode(s)), s) << s;
  for (const auto& s : invalid_utf8_texts()) EXPECT_EQ(t.decode(t.encode(s)), s) << s;
  expect_input_error([&] { t.decode({299}); }, "tiny.json", "token id 299 is not assigned");
}

// ---- Malformed and unsupported files ---------------------------------------------

TEST(BpeErrors, MissingFiles) {
  expect_input_error([] { BpeTokenizer::from_tokenizer_json("/nonexistent/tokenizer.json"); },
                     "/nonexistent/tokenizer.json", "cannot open");
  expect_input_error([] { BpeTokenizer::from_vocab_merges("/nonexistent/vocab.json", "/x"); },
                     "/nonexistent/vocab.json", "cannot open");
  expect_input_error([] { load_tokenizer("/nonexistent/tok"); }, "/nonexistent/tok",
                     "tokenizer.json, vocab.json + merges.txt, tokenizer.model or tokenizer.bin");
  const std::string dir = test::make_temp_dir();
  expect_input_error([&] { load_tokenizer(dir); }, dir,
                     "directory holds no tokenizer; looked for tokenizer.json, vocab.json + "
                     "merges.txt, tokenizer.model or tokenizer.bin");
  write_file(dir + "/vocab.json", "{}");  // merges.txt missing beside it
  expect_input_error([&] { load_tokenizer(dir + "/vocab.json"); }, dir + "/merges.txt",
                     "cannot open");
  std::remove((dir + "/vocab.json").c_str());
  std::remove(dir.c_str());
}

TEST(BpeErrors, MalformedTokenizerJson) {
  auto parse = [](const std::string& text) {
    BpeTokenizer::from_tokenizer_json_text(text, "bad.json");
  };
  expect_input_error([&] { parse("{\"model\": "); }, "bad.json", "malformed JSON");
  expect_input_error([&] { parse("[1, 2]"); }, "bad.json", "has no \"model\"");

  json j = tiny_json(kLlama3Pattern);
  j["model"]["type"] = "WordPiece";
  expect_input_error([&] { parse(j.dump()); }, "bad.json",
                     "model.type is \"WordPiece\"; expected \"BPE\"");
  j = tiny_json(kLlama3Pattern);
  j["model"].erase("merges");
  expect_input_error([&] { parse(j.dump()); }, "bad.json", "model.merges is missing");
  j = tiny_json(kLlama3Pattern);
  j["model"]["merges"].push_back("q nope");
  expect_input_error([&] { parse(j.dump()); }, "bad.json",
                     "model.merges[9] ('q nope'): token 'nope' is not in the vocabulary");
  j = tiny_json(kLlama3Pattern);
  j["model"]["merges"].push_back("a b c");
  expect_input_error([&] { parse(j.dump()); }, "bad.json", "expected \"a b\" or [\"a\", \"b\"]");
  j = tiny_json(kLlama3Pattern);
  j["model"]["vocab"]["x"] = "seven";
  expect_input_error([&] { parse(j.dump()); }, "bad.json",
                     "model.vocab id of 'x' is \"seven\"; expected an integer");
  j = tiny_json(kLlama3Pattern);
  j["model"]["vocab"]["big"] = 1LL << 40;
  expect_input_error([&] { parse(j.dump()); }, "bad.json", "token 'big' has id 1099511627776");
  j = tiny_json(kLlama3Pattern);
  j["model"]["vocab"].erase(byte_char(' '));
  expect_input_error([&] { parse(j.dump()); }, "bad.json", "has no token for byte 0x20");
  j = tiny_json(kLlama3Pattern);
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
  expect_input_error([&] { parse(j.dump()); }, "bad.json", "pattern '(unclosed' does not compile");
}

// Found by fuzz_tokenizer_json (tests/fuzz/regressions/tokenizer_json): an id
// written as a float (2.4e63) was converted to an integer with undefined
// behaviour; ids must be integers.
TEST(BpeErrors, IdsThatAreNotIntegers) {
  auto parse = [](const std::string& text) {
    BpeTokenizer::from_tokenizer_json_text(text, "bad.json");
  };
  json j = tiny_json(kLlama3Pattern);
  j["model"]["vocab"]["xyz"] = 2.45778e+63;
  expect_input_error([&] { parse(j.dump()); }, "bad.json",
                     "model.vocab id of 'xyz' is 2.45778e+63; expected an integer");
  j = tiny_json(kLlama3Pattern);
  j["added_tokens"][0]["id"] = 300.5;
  expect_input_error([&] { parse(j.dump()); }, "bad.json",
                     "added_tokens id is 300.5; expected an integer");
  j = tiny_json(kLlama3Pattern);
  j["post_processor"] = llama3_template();
  j["post_processor"]["special_tokens"]["<|begin_of_text|>"]["ids"] = {1e300};
  expect_input_error([&] { parse(j.dump()); }, "bad.json",
                     "post_processor id of '<|begin_of_text|>' is 1e+300; expected an integer");
}

TEST(BpeErrors, UnsupportedPipelines) {
  auto parse = [](const json& j) { BpeTokenizer::from_tokenizer_json_text(j.dump(), "bad.json"); };
  json j = tiny_json(kLlama3Pattern);
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}};
  // Metaspace's split (the default) cuts before every '▁': not implemented.
  expect_input_error([&] { parse(j); }, "bad.json", "Metaspace pre-tokenizer is supported first");
  j["pre_tokenizer"] = {{"type", "WhitespaceSplit"}};
  expect_input_error([&] { parse(j); }, "bad.json", "pre-tokenizer WhitespaceSplit is not supported");
  // Without ByteLevel the file is SentencePiece-style BPE, whose decoder
  // cannot be ByteLevel's.
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Isolated"}};
  j["decoder"] = {{"type", "ByteLevel"}};
  expect_input_error([&] { parse(j); }, "bad.json", "is not supported without a ByteLevel");
  j.erase("decoder");
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}};
  expect_input_error([&] { parse(j); }, "bad.json", "add_prefix_space=true is not supported");
  j = tiny_json(kLlama3Pattern);
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  expect_input_error([&] { parse(j); }, "bad.json", "behavior 'Removed'");
  j = tiny_json(kLlama3Pattern);
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_input_error([&] { parse(j); }, "bad.json", "normalizer Lowercase is not supported");
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"Regex", " +"}}}, {"content", " "}};
  expect_input_error([&] { parse(j); }, "bad.json", "normalizer Replace with pattern");
  j["normalizer"] = {{"type", "NFC"}};  // Qwen2's: applied
  EXPECT_NO_THROW(parse(j));
  // Hugging Face matches normalized=true added tokens after normalizing.
  j["added_tokens"][2]["normalized"] = true;
  expect_input_error([&] { parse(j); }, "bad.json", "added token '<extra>' has normalized=true");
  j["normalizer"] = nullptr;  // then nothing changes the text around it
  EXPECT_NO_THROW(parse(j));
}

// ---- SentencePiece-style BPE in tokenizer.json (Gemma's form) ------------------------

// A hand-made file: ' ' -> '▁', split after each '▁', characters merged by
// rank, é by its two byte tokens, characters with no token as one fused <unk>.
json sentencepiece_style_json(const char* behavior) {
  return json::parse(std::string(R"({
    "added_tokens": [{"id": 11, "content": "<bos>", "special": true, "lstrip": false,
                      "rstrip": false, "normalized": false, "single_word": false}],
    "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    "pre_tokenizer": {"type": "Split", "pattern": {"String": "\u2581"}, "behavior": ")") +
                     behavior + R"(", "invert": false},
    "post_processor": null,
    "decoder": {"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
      {"type": "ByteFallback"}, {"type": "Fuse"}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
      "vocab": {"<unk>": 0, "<0xC3>": 1, "<0xA9>": 2, "\u2581": 3, "a": 4, "b": 5,
                "\u2581a": 6, "ab": 7, "\u2581ab": 8, "c": 9, "a\u2581": 10},
      "merges": [["\u2581", "a"], ["a", "b"], ["\u2581a", "b"], ["a", "\u2581"]]}})");
}

TEST(BpeSentencePieceStyle, HandWorkedIds) {
  const BpeTokenizer t =
      BpeTokenizer::from_tokenizer_json_text(sentencepiece_style_json("MergedWithPrevious").dump(), "sp.json");
  // " a b" -> "▁a▁b" -> pieces "▁" | "a▁" | "b" -> 3 | (a,▁ rank 3) 10 | 5.
  EXPECT_EQ(t.encode(" a b"), (Ids{3, 10, 5}));
  // One piece "ab": (a,b) rank 1.
  EXPECT_EQ(t.encode("ab"), (Ids{7}));
  // é (C3 A9) has no token: its two byte tokens.
  EXPECT_EQ(t.encode("\xC3\xA9"), (Ids{1, 2}));
  // ü (C3 BC) lacks <0xBC>, x has no token: one fused <unk>, then a.
  EXPECT_EQ(t.encode("\xC3\xBCx" "a"), (Ids{0, 4}));
  // The added token is matched before normalization.
  EXPECT_EQ(t.encode("ab<bos>ab"), (Ids{7, 11, 7}));
  EXPECT_EQ(t.decode({3, 10, 5}), " a b");
  EXPECT_EQ(t.decode({1, 2, 8}), "\xC3\xA9 ab");
  EXPECT_EQ(t.decode({11, 7}), "ab");  // special: no text
}

TEST(BpeSentencePieceStyle, SplitBehaviors) {
  // Isolated: "▁" | "a" | "▁" | "b", no merge crosses a piece.
  const BpeTokenizer isolated =
      BpeTokenizer::from_tokenizer_json_text(sentencepiece_style_json("Isolated").dump(), "sp.json");
  EXPECT_EQ(isolated.encode(" a b"), (Ids{3, 4, 3, 5}));
  // No pre-tokenizer: one piece "▁a▁b"; (▁,a) rank 0 first, then nothing applies.
  json j = sentencepiece_style_json("Isolated");
  j["pre_tokenizer"] = nullptr;
  const BpeTokenizer whole = BpeTokenizer::from_tokenizer_json_text(j.dump(), "sp.json");
  EXPECT_EQ(whole.encode(" a b"), (Ids{6, 3, 5}));
  // Without fuse_unk each unknown character is one <unk>.
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(BpeTokenizer::from_tokenizer_json_text(j.dump(), "sp.json").encode("xx"), (Ids{0, 0}));
}

}  // namespace
}  // namespace sparc
