#include "tokenizer/sentencepiece_tokenizer.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"
#include "test_util.h"

namespace sparc {
namespace {

using Ids = std::vector<std::int32_t>;
using Type = SentencePieceTokenizer::PieceType;

// Runs a shell command; returns its standard output, or nullopt when it fails.
std::optional<std::string> run(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  return ::pclose(pipe) == 0 ? std::optional<std::string>(out) : std::nullopt;
}

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

// ---- Hand-built protobuf ---------------------------------------------------------

std::string varint(std::uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out += static_cast<char>(v | 0x80);
  return out + static_cast<char>(v);
}
std::string key(std::uint32_t field, std::uint32_t wire) { return varint(field << 3 | wire); }
std::string int_field(std::uint32_t field, std::int64_t v) {
  return key(field, 0) + varint(static_cast<std::uint64_t>(v));
}
std::string bytes_field(std::uint32_t field, const std::string& s) {
  return key(field, 2) + varint(s.size()) + s;
}
std::string float_field(std::uint32_t field, float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  std::string out = key(field, 5);
  for (int i = 0; i < 4; ++i) out += static_cast<char>(bits >> (8 * i));
  return out;
}
std::string piece(const std::string& text, float score, int type, const std::string& extra = "") {
  return bytes_field(1, bytes_field(1, text) + float_field(2, score) + int_field(3, type) + extra);
}

// Every wire type, as unknown fields to skip: a varint, fixed64, bytes,
// fixed32 and a group holding a varint and a nested group.
const std::string kUnknownFields = int_field(900, -5) + key(901, 1) + std::string(8, '\x7F') +
                                   bytes_field(902, "\x0A\xFF") + key(903, 5) + "\x01\x02\x03\x04" +
                                   key(904, 3) + int_field(1, 7) + key(905, 3) + key(905, 4) +
                                   key(904, 4);

// A minimal BPE model with byte fallback; `trainer` and `normalizer` add
// fields to its specs, `unknown` goes into its first piece and its end.
std::string minimal_model(const std::string& trainer = "", const std::string& normalizer = "",
                          const std::string& unknown = "") {
  const std::string sp = "\xE2\x96\x81";
  struct Piece {
    std::string text;
    float score;
    int type;  // 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte
  };
  const std::vector<Piece> pieces = {
      {"<unk>", 0, 2},     // 0
      {"<s>", 0, 3},       // 1
      {"</s>", 0, 3},      // 2
      {"<0x21>", 0, 6},    // 3: '!'
      {"<0xC3>", 0, 6},    // 4
      {"<0xA9>", 0, 6},    // 5
      {sp, 0, 1},          // 6
      {"a", 0, 1},         // 7
      {"b", 0, 1},         // 8
      {"ab", -1, 1},       // 9
      {sp + "a", -2, 1},   // 10
      {sp + "ab", -3, 1},  // 11
      {"ba", -1, 1},       // 12
      {"<sep>", 0, 4},     // 13
  };
  std::string m;
  for (const auto& p : pieces) m += piece(p.text, p.score, p.type, m.empty() ? unknown : "");
  m += bytes_field(2, int_field(3, 2) + int_field(35, 1) + trainer);  // BPE, byte_fallback
  m += bytes_field(3, bytes_field(1, "identity") + int_field(4, 0) + normalizer);
  return m + unknown;
}

void expect_minimal_encodings(const SentencePieceTokenizer& t) {
  EXPECT_EQ(t.vocab_size(), 14);
  EXPECT_EQ(t.bos_id(), 1);  // TrainerSpec's defaults
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.piece(6), "\xE2\x96\x81");
  EXPECT_EQ(t.type(3), Type::kByte);
  EXPECT_EQ(t.type(13), Type::kUserDefined);
  // [▁,a,b]: "ab" (-1) beats "▁a" (-2), then "▁ab" (-3).
  EXPECT_EQ(t.encode("ab"), (Ids{11}));
  // [▁,a,b,a]: "ab" and "ba" tie; the leftmost wins -> [▁,ab,a] -> [▁ab,a].
  EXPECT_EQ(t.encode("aba"), (Ids{11, 7}));
  EXPECT_EQ(t.encode("a!"), (Ids{10, 3}));   // '!' takes its byte piece
  EXPECT_EQ(t.encode("é"), (Ids{6, 4, 5}));  // two byte pieces
  EXPECT_EQ(t.encode("z"), (Ids{6, 0}));     // no piece, no byte piece: <unk>
  EXPECT_EQ(t.encode("a b"), (Ids{10, 6, 8}));
  EXPECT_EQ(t.encode("<s>"), (Ids{6, 0, 0, 0}));              // control pieces never come from text
  EXPECT_EQ(t.encode("<0x21>"), (Ids{6, 0, 0, 0, 0, 0, 0}));  // nor byte pieces
  EXPECT_EQ(t.encode("a<sep>b"), (Ids{10, 13, 8}));           // matched whole, never merged
  EXPECT_EQ(t.encode(""), Ids{});
  EXPECT_EQ(t.decode({1, 11, 3, 2}), "ab!");
  EXPECT_EQ(t.decode({6, 4, 5}), "é");
  EXPECT_EQ(t.decode({6, 6, 7}), " a");  // only the first piece's '▁' is the dummy prefix
  EXPECT_EQ(t.decode({0}), " \xE2\x81\x87 ");
}

TEST(SentencePieceHandBuilt, MinimalModel) {
  expect_minimal_encodings(SentencePieceTokenizer::from_bytes(minimal_model(), "min.model"));
}

TEST(SentencePieceHandBuilt, SkipsUnknownFields) {
  expect_minimal_encodings(SentencePieceTokenizer::from_bytes(
      minimal_model(kUnknownFields, kUnknownFields, kUnknownFields), "min.model"));
}

TEST(SentencePieceHandBuilt, SpecFields) {
  auto t = SentencePieceTokenizer::from_bytes(
      minimal_model(int_field(41, -1) + int_field(42, 1), int_field(3, 0)), "min.model");
  EXPECT_EQ(t.bos_id(), std::nullopt);  // -1, sent as a 10-byte varint
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.encode("ab"), (Ids{9}));  // no dummy prefix
  EXPECT_EQ(t.decode({10}), " a");      // and none to strip

  // remove_extra_whitespaces: leading, trailing and repeated spaces go.
  auto folded = SentencePieceTokenizer::from_bytes(minimal_model("", int_field(4, 1)), "m");
  EXPECT_EQ(folded.encode("  a   b  "), (Ids{10, 6, 8}));
  EXPECT_EQ(folded.encode("   "), Ids{});

  // Without byte_fallback a run of unknown characters is one <unk>, byte pieces or not.
  auto no_bytes = SentencePieceTokenizer::from_bytes(minimal_model(int_field(35, 0)), "m");
  EXPECT_EQ(no_bytes.encode("a!é b!"), (Ids{10, 0, 6, 8, 0}));
}

TEST(SentencePieceHandBuilt, MalformedFilesAreInputErrors) {
  auto parse = [](const std::string& bytes) {
    return [bytes] { SentencePieceTokenizer::from_bytes(bytes, "bad.model"); };
  };
  const std::string ok = minimal_model();
  expect_input_error(parse("\x0A\xFF"), "bad.model", "truncated varint");
  expect_input_error(parse(ok + key(99, 0) + "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x7F"),
                     "bad.model", "varint longer than 64 bits");
  expect_input_error(parse(ok + key(1, 2) + varint(5) + "ab"), "bad.model",
                     "ModelProto field 1 at byte " + std::to_string(ok.size()) +
                         ": length 5 runs past the end of the ModelProto (2 bytes left)");
  expect_input_error(parse(bytes_field(1, bytes_field(1, "a") + int_field(2, 3)) + ok), "bad.model",
                     "SentencePiece field 2 at byte 5: wire type 0; expected 5 (a fixed32)");
  expect_input_error(parse(ok + int_field(1, 3)), "bad.model", "expected 2 (length-delimited)");
  expect_input_error(parse(ok + key(7, 7)), "bad.model", "invalid wire type 7");
  expect_input_error(parse(ok + key(0, 0)), "bad.model", "invalid field number 0");
  expect_input_error(parse(ok + key(9, 4)), "bad.model", "end-group marker without a start");
  expect_input_error(parse(ok + key(9, 3) + int_field(1, 1)), "bad.model", "ends inside a group");
  expect_input_error(parse(ok + key(9, 1) + "1234567"), "bad.model", "length 8 runs past the end");
  expect_input_error(parse(""), "bad.model", "SentencePiece model has no pieces");
  expect_input_error(parse("not a model"), "bad.model", "not a valid SentencePiece model");
  expect_input_error(parse(minimal_model(int_field(3, 4))), "bad.model",
                     "is a char SentencePiece model; only BPE and unigram models are supported");
  expect_input_error(parse(minimal_model(int_field(3, 9))), "bad.model",
                     "unknown SentencePiece model_type 9");
  expect_input_error(parse(minimal_model("", bytes_field(1, "nmt_nfkc") + bytes_field(2, "map"))),
                     "bad.model", "malformed precompiled_charsmap: shorter than its 4-byte header");
  expect_input_error(
      parse(minimal_model("", bytes_field(2, std::string("\x08\0\0\0\0\0\0\0", 8)))),
      "bad.model", "trie size 8 does not fit the 8-byte map");
  expect_input_error(parse(minimal_model(int_field(24, 1))), "bad.model",
                     "treat_whitespace_as_suffix");
  expect_input_error(parse(bytes_field(2, int_field(3, 2))), "bad.model", "has no pieces");
  expect_input_error(parse(minimal_model(int_field(41, 14))), "bad.model",
                     "bos_id 14 is out of range; expected -1 (none) or 0..13");
  expect_input_error(parse(minimal_model(int_field(42, -2))), "bad.model", "eos_id -2");
  expect_input_error(parse(piece("x", 0, 7) + ok), "bad.model", "piece 0 'x' has type 7");
  expect_input_error(parse(ok + piece("a", 0, 1)), "bad.model", "piece 14 'a' repeats piece 7");
  expect_input_error(parse(ok + piece("", 0, 1)), "bad.model", "piece 14 is empty");
  expect_input_error(parse(ok + piece("<0xZZ>", 0, 6)), "bad.model", "expected a piece <0x00>");
  expect_input_error(parse(ok + piece("<u2>", 0, 2)), "bad.model", "second unknown piece");
  expect_input_error(parse(piece("a", 0, 1) + bytes_field(2, int_field(3, 2))), "bad.model",
                     "has no unknown piece");
}

TEST(SentencePieceHandBuilt, CorruptedBytesNeverCrash) {
  const std::string ok = minimal_model(kUnknownFields, "", kUnknownFields);
  auto check = [](const std::string& bytes) {
    try {
      auto t = SentencePieceTokenizer::from_bytes(bytes, "fuzz.model");
      auto ids = t.encode("ab a!é z <sep> \xFF");
      t.decode(ids);
    } catch (const InputError& e) {
      EXPECT_EQ(e.where(), "fuzz.model");
    }
  };
  for (std::size_t n = 0; n < ok.size(); ++n) check(ok.substr(0, n));
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string b = ok;
    for (int k = 1 + rng() % 3; k > 0; --k) b[rng() % b.size()] = static_cast<char>(rng());
    check(b);
  }
}

TEST(SentencePieceErrors, MissingFile) {
  expect_input_error([] { SentencePieceTokenizer t("/nonexistent/tokenizer.model"); },
                     "/nonexistent/tokenizer.model", "cannot open");
}

TEST(SentencePieceHandBuilt, UnigramViterbi) {
  // The minimal model as a unigram model (a second model_type field wins).
  // NORMAL scores: ▁ a b 0, ab ba -1, ▁a -2, ▁ab -3; so min -3, unknown
  // -3 - 10 = -13, and max 0 -> FLT_MIN, so <sep> scores 5 * FLT_MIN - 0.1.
  const auto t = SentencePieceTokenizer::from_bytes(minimal_model(int_field(3, 1)), "uni.model");
  // "▁ab": ▁|a|b = 0 beats ▁|ab = -1, ▁a|b = -2, ▁ab = -3.
  EXPECT_EQ(t.encode("ab"), (Ids{6, 7, 8}));
  // '!' has no piece: unknown (-13), replaced by its byte piece <0x21>.
  EXPECT_EQ(t.encode("a!"), (Ids{6, 7, 3}));
  EXPECT_EQ(t.encode("\xC3\xA9"), (Ids{6, 4, 5}));  // é: unknown, two byte pieces
  // Byte fallback without a <0x7A> piece: <unk> for each byte, not fused.
  EXPECT_EQ(t.encode("zz"), (Ids{6, 0, 0}));
  // <sep> (-0.1) beats five unknown characters (-65).
  EXPECT_EQ(t.encode("a<sep>b"), (Ids{6, 7, 13, 8}));
  EXPECT_EQ(t.encode(""), (Ids{}));
  EXPECT_EQ(t.decode({6, 7, 13, 8}), "a<sep>b");
}

// ---- Models trained by spm_train, compared with spm_encode ---------------------------

// Single-line texts (spm_encode reads one per line).
std::vector<std::string> sample_texts() {
  return {"the cat sat on the mat",
          "Hello world",
          "a  b",
          "a     b   c",
          "trailing spaces   ",
          "   leading",
          " ",
          "   ",
          "tabs\tand\t\ttabs",
          "12345 and 3.14 and 4567123",
          "café naïve über straße",
          "日本語 日本",
          "emoji 😀🎉 👍🏽",
          "mixed 日本語café😀123",
          "a \xE2\x96\x81 written lower one eighth block\xE2\x96\x81",
          "don't stop",
          "zebra quartz jukebox",
          "x",
          "lily played with the big red ball and then the dog ran to the sun"};
}

// Lines spm_encode reads too, with bytes that are not UTF-8.
std::vector<std::string> invalid_utf8_texts() {
  return {"\x80",
          "abc\x80"
          "def",
          "a\xC3",
          "\xFF\xFE",
          "\xED\xA0\x80",
          "\xC0\xAF",
          "\xF4\x90\x80\x80"};
}

// A long line of corpus words and other characters, to exercise many merges.
std::string long_text() {
  const std::vector<std::string> parts = {"the", "cat",    "  ",     "café", "😀",
                                          "123", "lily",   "日本語", "x",    "played",
                                          "\t",  "straße", "über"};
  std::mt19937 rng(11);
  std::string s;
  for (int i = 0; i < 400; ++i) s += parts[rng() % parts.size()] + (rng() % 3 ? " " : "");
  return s;
}

// Three models trained at test time with spm_train (Debian package
// `sentencepiece`): "llama", set up like Llama 2 (BPE, byte fallback, identity
// normalization, no whitespace folding, digits split); "folded", with the
// default whitespace folding, no byte fallback, no BOS and a user-defined
// symbol; two unigram models with identity normalization, "unigram_bytes"
// (byte fallback, no whitespace folding) and "unigram_folded" (folding, a
// user-defined symbol, no byte fallback); and models with SentencePiece's
// default nmt_nfkc rule (a precompiled map), "unigram" and "nfkc" (BPE).
class SentencePieceModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!run("command -v spm_train >/dev/null && command -v spm_encode >/dev/null")) return;
    dir_ = test::make_temp_dir();
    std::ostringstream corpus;
    const std::vector<std::string> words = {
        "the",  "cat",  "sat",   "on",     "a",    "mat",    "and",  "then", "ran",
        "to",   "big",  "red",   "ball",   "lily", "played", "sun",  "dog",  "123",
        "4567", "café", "naïve", "日本語", "über", "straße", "<sep>"};
    std::mt19937 rng(3);
    for (int line = 0; line < 300; ++line) {
      for (int w = 0; w < 12; ++w) corpus << (w ? " " : "") << words[rng() % words.size()];
      corpus << "\n";
    }
    write_file(dir_ + "/corpus.txt", corpus.str());
    const std::string common = "spm_train --input=" + dir_ + "/corpus.txt --minloglevel=2 " +
                               "--num_threads=1 --character_coverage=1.0 ";
    const std::string quiet = " >/dev/null 2>&1";
    trained_ =
        run(common + "--model_type=bpe --model_prefix=" + dir_ + "/llama --vocab_size=300 " +
            "--byte_fallback=true --normalization_rule_name=identity " +
            "--remove_extra_whitespaces=false --split_digits=true" + quiet)
            .has_value() &&
        run(common + "--model_type=bpe --model_prefix=" + dir_ + "/folded --vocab_size=120 " +
            "--hard_vocab_limit=false --normalization_rule_name=identity --bos_id=-1 " +
            "--eos_id=1 --user_defined_symbols='<sep>'" + quiet)
            .has_value() &&
        run(common + "--model_type=unigram --model_prefix=" + dir_ + "/unigram " +
            "--vocab_size=100 --hard_vocab_limit=false" + quiet)
            .has_value() &&
        run(common + "--model_type=unigram --model_prefix=" + dir_ + "/unigram_bytes " +
            "--vocab_size=400 --hard_vocab_limit=false --byte_fallback=true " +
            "--normalization_rule_name=identity --remove_extra_whitespaces=false" + quiet)
            .has_value() &&
        run(common + "--model_type=unigram --model_prefix=" + dir_ + "/unigram_folded " +
            "--vocab_size=80 --hard_vocab_limit=false --normalization_rule_name=identity " +
            "--user_defined_symbols='<sep>'" + quiet)
            .has_value() &&
        run(common + "--model_type=bpe --model_prefix=" + dir_ + "/nfkc --vocab_size=100 " +
            "--hard_vocab_limit=false" + quiet)
            .has_value() &&
        // Set up as Gemma 3's tokenizer.model says: BPE, byte fallback, split
        // digits, no dummy prefix, no whitespace folding, whitespace runs as
        // user-defined pieces (its newline ones cannot pass spm_encode's lines).
        run(common + "--model_type=bpe --model_prefix=" + dir_ + "/gemma --vocab_size=300 " +
            "--byte_fallback=true --normalization_rule_name=identity --split_digits=true " +
            "--add_dummy_prefix=false --remove_extra_whitespaces=false --allow_whitespace_only_pieces=true " +
            "--user_defined_symbols=\xE2\x96\x81\xE2\x96\x81,\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81" + quiet)
            .has_value();
  }

  void SetUp() override {
    if (dir_.empty())
      GTEST_SKIP() << "spm_train/spm_encode not installed (Debian package sentencepiece)";
    ASSERT_TRUE(trained_) << "spm_train failed in " << dir_;
    llama_ = dir_ + "/llama.model";
    folded_ = dir_ + "/folded.model";
  }

  // The ids spm_encode gives each text: the reference for encode().
  static std::vector<Ids> spm_encode(const std::string& model,
                                     const std::vector<std::string>& texts) {
    std::string input;
    for (const auto& t : texts) input += t + "\n";
    write_file(dir_ + "/input.txt", input);
    auto out = run("spm_encode --model=" + model + " --output_format=id < " + dir_ + "/input.txt");
    std::vector<Ids> result;
    if (!out) return result;
    std::istringstream lines(*out);
    for (std::string line; std::getline(lines, line);) {
      std::istringstream fields(line);
      Ids ids;
      for (std::int32_t id; fields >> id;) ids.push_back(id);
      result.push_back(ids);
    }
    return result;
  }

  static void expect_matches_spm_encode(const std::string& model,
                                        const std::vector<std::string>& texts) {
    SentencePieceTokenizer t(model);
    auto expected = spm_encode(model, texts);
    ASSERT_EQ(expected.size(), texts.size()) << model;
    for (std::size_t i = 0; i < texts.size(); ++i)
      EXPECT_EQ(t.encode(texts[i]), expected[i]) << model << ": '" << texts[i] << "'";
  }

  static inline std::string dir_;
  static inline bool trained_ = false;
  std::string llama_, folded_;
};

TEST_F(SentencePieceModel, SpecialTokensAreTheModels) {
  SentencePieceTokenizer t(llama_);
  EXPECT_EQ(t.vocab_size(), 300);  // --vocab_size
  // spm_train's defaults: <unk> 0, <s> 1, </s> 2.
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.piece(0), "<unk>");
  EXPECT_EQ(t.piece(1), "<s>");
  EXPECT_EQ(t.piece(2), "</s>");
  EXPECT_EQ(t.piece(3), "<0x00>");  // byte fallback pieces follow
  EXPECT_EQ(t.type(3), Type::kByte);

  SentencePieceTokenizer folded(folded_);
  EXPECT_EQ(folded.bos_id(), std::nullopt);  // --bos_id=-1
  EXPECT_EQ(folded.eos_id(), 1);             // --eos_id=1
  EXPECT_EQ(folded.encode_with_bos("the cat"), folded.encode("the cat"));
}

TEST_F(SentencePieceModel, MatchesSpmEncode) {
  auto texts = sample_texts();
  texts.push_back(long_text());
  expect_matches_spm_encode(llama_, texts);
  // Out-of-vocabulary characters take byte fallback tokens: 'z' is byte 0x7A, id 3 + 0x7A.
  EXPECT_EQ(SentencePieceTokenizer(llama_).encode("zz").back(), 3 + 'z');
}

TEST_F(SentencePieceModel, MatchesSpmEncodeWithWhitespaceFoldingAndUserSymbols) {
  auto texts = sample_texts();
  texts.insert(texts.end(), {"the<sep>cat", " <sep> <sep>", "<se", "<sep><sep>", long_text()});
  expect_matches_spm_encode(folded_, texts);
}

TEST_F(SentencePieceModel, MatchesSpmEncodeOnInvalidUtf8) {
  // SentencePiece reads each invalid byte as U+FFFD.
  expect_matches_spm_encode(llama_, invalid_utf8_texts());
  expect_matches_spm_encode(folded_, invalid_utf8_texts());
}

TEST_F(SentencePieceModel, RoundTrips) {
  SentencePieceTokenizer t(llama_);
  auto texts = sample_texts();
  texts.insert(texts.end(), {"line one\nline two\n", "\n\n", "", long_text()});
  for (const auto& s : texts) {
    if (s.find("\xE2\x96\x81") != std::string::npos) continue;  // '▁' decodes as ' '
    EXPECT_EQ(t.decode(t.encode(s)), s) << s;
  }
  // Control tokens decode to nothing.
  auto ids = t.encode_with_bos("the cat");
  ASSERT_EQ(ids.front(), 1);
  ids.push_back(2);
  EXPECT_EQ(t.decode(ids), "the cat");
}

TEST_F(SentencePieceModel, DecodesAsSpmDecode) {
  SentencePieceTokenizer t(llama_);
  const auto texts = sample_texts();
  std::string input;
  std::vector<Ids> all;
  for (const auto& s : texts) {
    all.push_back(t.encode_with_bos(s));
    all.back().push_back(2);
    for (std::int32_t id : all.back()) input += std::to_string(id) + " ";
    input += "\n";
  }
  write_file(dir_ + "/ids.txt", input);
  auto out = run("spm_decode --model=" + llama_ + " --input_format=id < " + dir_ + "/ids.txt");
  ASSERT_TRUE(out);
  std::istringstream lines(*out);
  for (const auto& ids : all) {
    std::string line;
    ASSERT_TRUE(std::getline(lines, line));
    EXPECT_EQ(t.decode(ids), line);
  }
}

TEST_F(SentencePieceModel, InvalidUtf8DoesNotCrash) {
  SentencePieceTokenizer t(llama_);
  for (const auto& s : invalid_utf8_texts()) {
    auto ids = t.encode(s);
    EXPECT_FALSE(ids.empty()) << s;
    EXPECT_NO_THROW(t.decode(ids));
  }
}

TEST_F(SentencePieceModel, UnigramMatchesSpmEncode) {
  auto texts = sample_texts();
  // Characters the corpus never had: unknown, or their byte pieces.
  texts.insert(texts.end(), {"the<sep>cat", " <sep> <sep>", "<se", "\u0416\u0416 qq\u0416", "zzz",
                             long_text()});
  for (const char* name : {"/unigram_bytes.model", "/unigram_folded.model"}) {
    expect_matches_spm_encode(dir_ + name, texts);
    expect_matches_spm_encode(dir_ + name, invalid_utf8_texts());
  }
  // Lossless with byte fallback and no folding, but for a written '▁' (a space
  // to SentencePiece).
  SentencePieceTokenizer t(dir_ + "/unigram_bytes.model");
  for (const auto& text : sample_texts())
    if (text.find("\xE2\x96\x81") == std::string::npos)
      EXPECT_EQ(t.decode(t.encode(text)), text) << text;
}

TEST_F(SentencePieceModel, GemmaStyleMatchesSpmEncode) {
  auto texts = sample_texts();
  texts.insert(texts.end(), {"  two  spaces", "   three", "tab\there", "12345678", long_text()});
  expect_matches_spm_encode(dir_ + "/gemma.model", texts);
  expect_matches_spm_encode(dir_ + "/gemma.model", invalid_utf8_texts());
  SentencePieceTokenizer t(dir_ + "/gemma.model");
  EXPECT_EQ(t.decode(t.encode(" the cat")), " the cat");  // no dummy prefix to drop
}

// SentencePiece's default rule, nmt_nfkc: NFKC plus its own mappings
// (whitespace and control characters), through the precompiled map.
TEST_F(SentencePieceModel, NmtNfkcModelsMatchSpmEncode) {
  auto texts = sample_texts();
  texts.insert(texts.end(),
               {"\uFB01ne \u00BD \uFF21\uFF42\uFF43 \u2167 \u3392", "e\u0301 A\u030A \u212B \u2126",
                "\u1100\u1161\u11A8 \uFF76\uFF9E", "x\u00A0y\u3000z\u2009w", "a\x01b\x7F c",
                "\u200B\uFEFF zero width", "full\uFF0Cwidth\uFF1F", "the<sep>cat", long_text()});
  for (const char* name : {"/unigram.model", "/nfkc.model"}) {
    expect_matches_spm_encode(dir_ + name, texts);
    expect_matches_spm_encode(dir_ + name, invalid_utf8_texts());
  }
}

TEST_F(SentencePieceModel, LoadTokenizerFindsIt) {
  const std::string dir = test::make_temp_dir();
  ASSERT_TRUE(run("cp " + llama_ + " " + dir + "/tokenizer.model"));
  auto from_dir = load_tokenizer(dir);
  auto from_file = load_tokenizer(llama_);
  EXPECT_EQ(from_dir->encode("the cat"), SentencePieceTokenizer(llama_).encode("the cat"));
  EXPECT_EQ(from_file->bos_id(), 1);
  EXPECT_EQ(from_file->vocab_size(), 300);
}

TEST_F(SentencePieceModel, OutOfRangeIds) {
  SentencePieceTokenizer t(llama_);
  expect_input_error([&] { t.decode({300}); }, llama_,
                     "token id 300 is out of range; expected 0..299");
  expect_input_error([&] { t.piece(-1); }, llama_, "out of range");
}

}  // namespace
}  // namespace sparc
