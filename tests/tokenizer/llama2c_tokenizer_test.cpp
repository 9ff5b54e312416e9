#include "tokenizer/llama2c_tokenizer.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <random>

#include "core/error.h"
#include "test_util.h"

namespace sparc {
namespace {

const char* const kRealTokenizer = "models/aidreams260K/tokenizer.bin";

// ---- Building tokenizer.bin files ------------------------------------------

void put4(std::string& out, const void* value) {
  out.append(static_cast<const char*>(value), 4);
}

void put_record(std::string& out, float score, std::int32_t len, const std::string& text) {
  put4(out, &score);
  put4(out, &len);
  out += text;
}

std::string tokenizer_bin(std::int32_t max_token_length,
                          const std::vector<std::pair<std::string, float>>& tokens) {
  std::string out;
  put4(out, &max_token_length);
  for (const auto& [text, score] : tokens)
    put_record(out, score, static_cast<std::int32_t>(text.size()), text);
  return out;
}

// ---- An independent reference encoder --------------------------------------
// A plain transcription of llama2.c's algorithm over strings: its own file
// reader, an ordered map, and a full rescan of all pairs after every merge.

struct RefVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::map<std::string, int> index;  // first id of each piece
};

RefVocab read_ref_vocab(const std::string& path) {
  RefVocab v;
  std::ifstream in(path, std::ios::binary);
  std::int32_t max_len = 0;
  in.read(reinterpret_cast<char*>(&max_len), 4);
  float score;
  std::int32_t len;
  while (in.read(reinterpret_cast<char*>(&score), 4) && in.read(reinterpret_cast<char*>(&len), 4)) {
    std::string piece(len, '\0');
    in.read(piece.data(), len);
    v.index.emplace(piece, static_cast<int>(v.pieces.size()));
    v.pieces.push_back(piece);
    v.scores.push_back(score);
  }
  return v;
}

int ref_find(const RefVocab& v, const std::string& s) {
  auto it = v.index.find(s);
  return it == v.index.end() ? -1 : it->second;
}

std::vector<std::int32_t> ref_encode(const RefVocab& v, const std::string& text) {
  if (text.empty()) return {};
  // Units: a new one starts at every non-continuation byte, or after 4 bytes.
  std::vector<std::string> units{" "};  // the dummy prefix
  bool open = false;
  for (unsigned char c : text) {
    bool cont = (c >> 6) == 2;
    if (!open || !cont || units.back().size() == 4)
      units.emplace_back();
    units.back() += static_cast<char>(c);
    open = true;
  }
  std::vector<std::string> seq;  // token pieces
  for (const auto& u : units) {
    if (ref_find(v, u) >= 0) {
      seq.push_back(u);
      continue;
    }
    for (unsigned char c : u) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", c);
      seq.push_back(name);
    }
  }
  for (;;) {
    int best = -1;
    float best_score = -1e10f;
    for (std::size_t i = 0; i + 1 < seq.size(); ++i) {
      int id = ref_find(v, seq[i] + seq[i + 1]);
      if (id >= 0 && v.scores[id] > best_score) {
        best_score = v.scores[id];
        best = static_cast<int>(i);
      }
    }
    if (best < 0) break;
    seq[best] += seq[best + 1];
    seq.erase(seq.begin() + best + 1);
  }
  std::vector<std::int32_t> ids;
  for (const auto& p : seq) ids.push_back(ref_find(v, p));
  return ids;
}

std::vector<std::string> sample_texts() {
  std::vector<std::string> texts = {
      "a",
      "Hello world",
      "Once upon a time, there was a little girl named Lily.",
      "She loved to play outside in the sunshine. One day, she saw a big, red ball!",
      "   leading spaces",
      "trailing spaces   ",
      "tabs\tand\t\ttabs",
      "line one\nline two\n\nline four\r\n",
      "\n",
      " ",
      "  ",
      "1234567890 3.14159 -42 1e10",
      "!@#$%^&*()_+-=[]{};':\",./<>?`~|\\",
      "café",
      "naïve résumé über straße",
      "日本",
      "日本語のテキスト",
      "emoji: 😀🎉👍🏽",
      "Ελληνικά και русский",
      "mixed 日本 and café with 😀 and numbers 42.",
  };
  // Random mixtures of words, whitespace, punctuation and multi-byte text.
  const std::vector<std::string> parts = {
      "the", " cat", " sat", "on", " mat", "ing", "ed", "  ", "\n", "\t", ",", ".", "!",
      "7",   "42",   "é",    "日", "😀",   "ß",  "Q",  "xyz", " ", "don't", "Lily", "ball"};
  std::mt19937 rng(1234);
  for (int i = 0; i < 150; ++i) {
    std::string s;
    int n = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < n; ++k) s += parts[rng() % parts.size()];
    texts.push_back(s);
  }
  return texts;
}

// Not valid UTF-8: stray continuation bytes, truncated sequences, NUL, 0xFF.
std::vector<std::string> invalid_utf8_texts() {
  return {"\x80", "\x80" "abc", "abc\x80", "\x80x", "a\xC3", "\xC3", "\xE6\x97", "\xFF\xFE",
          "\xF0\x9F\x98\x80\x80\x80", std::string("a\0b", 3), "ok \xE6\x97\xA5\xA5 fin"};
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

// ---- The real tokenizer.bin of a llama2.c model (512 tokens) ----------------

class RealTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    SPARC_REQUIRE_SHARED(kRealTokenizer);
    path_ = test::shared_dir() + "/" + kRealTokenizer;
    tok_ = std::make_unique<Llama2cTokenizer>(path_);
    ref_ = read_ref_vocab(path_);
  }
  std::string path_;
  std::unique_ptr<Llama2cTokenizer> tok_;
  RefVocab ref_;
};

TEST_F(RealTokenizer, HeaderAndSpecialTokens) {
  EXPECT_EQ(tok_->vocab_size(), 512);
  EXPECT_EQ(tok_->max_token_length(), 10);
  EXPECT_EQ(tok_->piece(0), "<unk>");
  EXPECT_EQ(tok_->piece(1), "\n<s>\n");
  EXPECT_EQ(tok_->piece(2), "\n</s>\n");
  EXPECT_EQ(tok_->bos_id(), 1);
  EXPECT_EQ(tok_->eos_id(), 2);
}

TEST_F(RealTokenizer, HandCheckedEncodings) {
  EXPECT_TRUE(tok_->encode("").empty());
  // " " is 429 and "a" is 435; the pair forms " a", id 262 in the file.
  EXPECT_EQ(tok_->encode("a"), (std::vector<std::int32_t>{262}));
  // "\n" is not a piece and " <0x0A>" cannot merge: prefix, then <0x0A> (id 13).
  EXPECT_EQ(tok_->encode("\n"), (std::vector<std::int32_t>{429, 13}));
  EXPECT_EQ(tok_->encode_with_bos("a"), (std::vector<std::int32_t>{1, 262}));
}

TEST_F(RealTokenizer, ByteFallbackTokensDecodeToTheirByte) {
  EXPECT_EQ(tok_->piece(3), "<0x00>");
  EXPECT_EQ(tok_->piece(258), "<0xFF>");
  EXPECT_EQ(tok_->decode({3}), std::string(1, '\0'));
  EXPECT_EQ(tok_->decode({258}), "\xFF");
  EXPECT_EQ(tok_->decode({13}), "\n");
}

TEST_F(RealTokenizer, SpecialTokensDecodeToNothing) {
  EXPECT_EQ(tok_->decode({1, 262, 2}), "a");
  EXPECT_EQ(tok_->decode({0, 1, 2}), "");
}

TEST_F(RealTokenizer, MatchesReferenceEncoder) {
  for (const auto& s : sample_texts()) EXPECT_EQ(tok_->encode(s), ref_encode(ref_, s)) << s;
}

TEST_F(RealTokenizer, MatchesReferenceOnInvalidUtf8) {
  for (const auto& s : invalid_utf8_texts()) EXPECT_EQ(tok_->encode(s), ref_encode(ref_, s)) << s;
}

TEST_F(RealTokenizer, RoundTrips) {
  for (const auto& s : sample_texts()) EXPECT_EQ(tok_->decode(tok_->encode(s)), s) << s;
  for (const auto& s : invalid_utf8_texts()) EXPECT_EQ(tok_->decode(tok_->encode(s)), s) << s;
}

TEST_F(RealTokenizer, LongTextRoundTripsAndMatchesReference) {
  std::string para;
  for (const auto& s : sample_texts()) para += s + " ";
  para.resize(2000);  // the reference is cubic; keep its input modest
  EXPECT_EQ(tok_->encode(para), ref_encode(ref_, para));
  std::string big;
  while (big.size() < 200000) big += para;  // the class itself must stay fast
  EXPECT_EQ(tok_->decode(tok_->encode(big)), big);
}

TEST_F(RealTokenizer, OutOfRangeIdsAreErrors) {
  expect_input_error([&] { tok_->decode({512}); }, path_, "token id 512 is out of range");
  expect_input_error([&] { tok_->piece(-1); }, path_, "out of range");
}

TEST_F(RealTokenizer, LoadTokenizerOpensIt) {
  auto t = load_tokenizer(path_);
  EXPECT_EQ(t->vocab_size(), 512);
  EXPECT_EQ(t->encode("a"), (std::vector<std::int32_t>{262}));
}

// ---- A hand-built vocabulary --------------------------------------------------

Llama2cTokenizer tiny() {
  return Llama2cTokenizer::from_bytes(tokenizer_bin(6, {{"<unk>", 0},
                                                        {"\n<s>\n", 0},
                                                        {"\n</s>\n", 0},
                                                        {" ", 0},        // 3
                                                        {"a", 0},        // 4
                                                        {"b", 0},        // 5
                                                        {"c", 0},        // 6
                                                        {"ab", -1},      // 7
                                                        {"ba", -1},      // 8
                                                        {"bc", -0.5f},   // 9
                                                        {" a", -2},      // 10
                                                        {" ab", -4},     // 11
                                                        {"cc", -1e11f},  // 12: below llama2.c's floor
                                                        {"<0x21>", 0},   // 13: '!', not at 0x21+3
                                                        {"<0xC3>", 0},   // 14
                                                        {"<0xA9>", 0}}), // 15
                                     "tiny.bin");
}

TEST(Llama2cTokenizerTiny, HandComputedEncodings) {
  auto t = tiny();
  EXPECT_EQ(t.vocab_size(), 16);
  // " abc" -> [" ",a,b,c]; best pair "bc" (-0.5) -> [" ",a,bc]; then " a" (-2)
  // -> [" a",bc]; " abc" is no piece. Greedy by score, so not [" ", "abc"].
  EXPECT_EQ(t.encode("abc"), (std::vector<std::int32_t>{10, 9}));
  // [" ",a,b,a]: "ab" and "ba" tie at -1; the leftmost wins -> [" ",ab,a];
  // then " ab" (-4) -> [" ab",a].
  EXPECT_EQ(t.encode("aba"), (std::vector<std::int32_t>{11, 4}));
  // '!' is no piece: its fallback <0x21> is id 13. [" ",a,b,<0x21>] -> "ab" ->
  // " ab" -> [" ab",<0x21>].
  EXPECT_EQ(t.encode("ab!"), (std::vector<std::int32_t>{11, 13}));
  // "cc" scores -1e11, at or below llama2.c's starting best of -1e10: never merged.
  EXPECT_EQ(t.encode("cc"), (std::vector<std::int32_t>{3, 6, 6}));
  // "é" (C3 A9) is no piece: two fallback bytes, which never merge.
  EXPECT_EQ(t.encode("é"), (std::vector<std::int32_t>{3, 14, 15}));
  // 'z' has neither a piece nor a <0x7A> fallback: <unk>.
  EXPECT_EQ(t.encode("z"), (std::vector<std::int32_t>{3, 0}));
}

TEST(Llama2cTokenizerTiny, HandComputedDecodings) {
  auto t = tiny();
  EXPECT_EQ(t.decode({1, 11, 13, 2}), "ab!");
  EXPECT_EQ(t.decode({3, 14, 15}), "é");
  EXPECT_EQ(t.decode({3, 3, 4}), " a");  // only the first piece's space is the prefix
  EXPECT_EQ(t.decode({3, 0}), "");       // <unk> is lost
  EXPECT_EQ(t.decode({}), "");
  EXPECT_FLOAT_EQ(t.score(9), -0.5f);
}

TEST(Llama2cTokenizerTiny, ReadsFromAFile) {
  std::string dir = test::make_temp_dir();
  std::string path = dir + "/tokenizer.bin";
  {
    std::ofstream out(path, std::ios::binary);
    out << tokenizer_bin(5, {{"<unk>", 0}, {"<s>", 0}, {"</s>", 0}, {" ", 0}, {"x", 0}, {" x", -1}});
  }
  Llama2cTokenizer t(path);
  EXPECT_EQ(t.vocab_size(), 6);
  EXPECT_EQ(t.encode("xx"), (std::vector<std::int32_t>{5, 4}));  // " x" then "x"
  auto loaded = load_tokenizer(path);
  EXPECT_EQ(loaded->encode("xx"), (std::vector<std::int32_t>{5, 4}));
  std::remove(path.c_str());
  std::remove(dir.c_str());
}

// ---- Malformed files -----------------------------------------------------------

TEST(Llama2cTokenizerErrors, MissingFile) {
  const std::string path = "/nonexistent/tokenizer.bin";
  expect_input_error([&] { Llama2cTokenizer t(path); }, path, "cannot open");
}

TEST(Llama2cTokenizerErrors, MalformedBytes) {
  const std::string specials = tokenizer_bin(6, {{"<unk>", 0}, {"<s>", 0}, {"</s>", 0}});
  auto parse = [](const std::string& bytes) { Llama2cTokenizer::from_bytes(bytes, "bad.bin"); };
  auto header = [](std::int32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };

  expect_input_error([&] { parse(""); }, "bad.bin", "too short");
  expect_input_error([&] { parse("ab"); }, "bad.bin", "too short");
  expect_input_error([&] { parse(header(0)); }, "bad.bin", "max_token_length is 0");
  expect_input_error([&] { parse(header(-5)); }, "bad.bin", "max_token_length is -5");
  expect_input_error([&] { parse(header(1 << 30)); }, "bad.bin", "max_token_length is");

  std::string negative = specials;
  put_record(negative, 0, -1, "");
  expect_input_error([&] { parse(negative); }, "bad.bin", "token 3 at byte offset 40 has length -1");

  std::string too_long = specials;
  put_record(too_long, 0, 7, "abcdefg");
  expect_input_error([&] { parse(too_long); }, "bad.bin", "has length 7; expected 0..6");

  std::string huge = specials;
  put_record(huge, 0, 0x7FFFFFFF, "x");
  expect_input_error([&] { parse(huge); }, "bad.bin", "has length 2147483647");

  // A record cut inside its score/length header, then inside its text.
  expect_input_error([&] { parse(specials + "abc"); }, "bad.bin", "token 3 at byte offset 40 is truncated");
  std::string cut_text = specials;
  put_record(cut_text, 0, 5, "ab");
  expect_input_error([&] { parse(cut_text); }, "bad.bin", "expected 5 bytes of text, found 2");

  expect_input_error([&] { parse(header(4)); }, "bad.bin", "has 0 tokens; expected at least 3");
  expect_input_error([&] { parse(tokenizer_bin(5, {{"<unk>", 0}, {"<s>", 0}})); }, "bad.bin",
                     "has 2 tokens");
  EXPECT_NO_THROW(parse(specials));
}

}  // namespace
}  // namespace sparc
