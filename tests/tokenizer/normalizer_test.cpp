// The tokenizer.json normalizers against hand-worked expectations from the
// Unicode tables (UnicodeData.txt decompositions, the canonical ordering of
// combining classes, composition exclusions).
#include "tokenizer/normalizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "test_util.h"

namespace sparc {
namespace {

using nlohmann::json;

TEST(UnicodeNormalize, Nfc) {
  // e + COMBINING ACUTE (U+0301) composes to é (U+00E9).
  EXPECT_EQ(unicode_normalize("caf"
                              "e\xCC\x81",
                              UnicodeForm::kNfc),
            "caf\xC3\xA9");
  // ANGSTROM SIGN U+212B is a singleton: it decomposes to A + ring and comes
  // back as Å U+00C5, never as itself; OHM SIGN U+2126 becomes Ω U+03A9.
  EXPECT_EQ(unicode_normalize("\xE2\x84\xAB", UnicodeForm::kNfc), "\xC3\x85");
  EXPECT_EQ(unicode_normalize("\xE2\x84\xA6", UnicodeForm::kNfc), "\xCE\xA9");
  // e + dot below (ccc 220) + circumflex (ccc 230) and the reverse order both
  // compose to ệ U+1EC7: canonical reordering puts the dot below first.
  EXPECT_EQ(unicode_normalize("e\xCC\xA3\xCC\x82", UnicodeForm::kNfc), "\xE1\xBB\x87");
  EXPECT_EQ(unicode_normalize("e\xCC\x82\xCC\xA3", UnicodeForm::kNfc), "\xE1\xBB\x87");
  // Conjoining jamo L V T (U+1100 U+1161 U+11A8) compose to 각 U+AC01.
  EXPECT_EQ(unicode_normalize("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8", UnicodeForm::kNfc),
            "\xEA\xB0\x81");
  // Compatibility characters stay under NFC: ﬁ (U+FB01), ½.
  EXPECT_EQ(unicode_normalize("\xEF\xAC\x81\xC2\xBD", UnicodeForm::kNfc), "\xEF\xAC\x81\xC2\xBD");
  EXPECT_EQ(unicode_normalize("", UnicodeForm::kNfc), "");
}

TEST(UnicodeNormalize, Nfd) {
  EXPECT_EQ(unicode_normalize("\xC3\xA9", UnicodeForm::kNfd), "e\xCC\x81");
  // 각 U+AC01 -> U+1100 U+1161 U+11A8 (the Hangul algorithm).
  EXPECT_EQ(unicode_normalize("\xEA\xB0\x81", UnicodeForm::kNfd),
            "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8");
}

TEST(UnicodeNormalize, Nfkc) {
  // ﬁ -> "fi"; ½ -> "1⁄2" (FRACTION SLASH U+2044); ² -> "2"; fullwidth Ａ -> A.
  EXPECT_EQ(unicode_normalize("\xEF\xAC\x81", UnicodeForm::kNfkc), "fi");
  EXPECT_EQ(unicode_normalize("\xC2\xBD", UnicodeForm::kNfkc),
            "1\xE2\x81\x84"
            "2");
  EXPECT_EQ(unicode_normalize("x\xC2\xB2", UnicodeForm::kNfkc), "x2");
  EXPECT_EQ(unicode_normalize("\xEF\xBC\xA1", UnicodeForm::kNfkc), "A");
  // Halfwidth KA + halfwidth voiced mark (U+FF76 U+FF9E) -> GA U+30AC.
  EXPECT_EQ(unicode_normalize("\xEF\xBD\xB6\xEF\xBE\x9E", UnicodeForm::kNfkc), "\xE3\x82\xAC");
  // ㎒ U+3392 -> "MHz"; Ⅷ U+2167 -> "VIII".
  EXPECT_EQ(unicode_normalize("\xE3\x8E\x92", UnicodeForm::kNfkc), "MHz");
  EXPECT_EQ(unicode_normalize("\xE2\x85\xA7", UnicodeForm::kNfkc), "VIII");
}

TEST(UnicodeNormalize, Nfkd) {
  // ﬁ -> "fi"; é -> e + U+0301.
  EXPECT_EQ(unicode_normalize("\xEF\xAC\x81\xC3\xA9", UnicodeForm::kNfkd), "fie\xCC\x81");
}

TEST(UnicodeNormalize, InvalidBytesStayAndSplitRuns) {
  // The invalid byte stays; the runs on either side are normalized alone, so
  // e | 0xFF | U+0301 does not compose.
  EXPECT_EQ(unicode_normalize("\xC3\xA9\xFF"
                              "e\xCC\x81",
                              UnicodeForm::kNfd),
            "e\xCC\x81\xFF"
            "e\xCC\x81");
  EXPECT_EQ(unicode_normalize("e\xFF\xCC\x81", UnicodeForm::kNfc), "e\xFF\xCC\x81");
  EXPECT_EQ(unicode_normalize("\xED\xA0\x80", UnicodeForm::kNfc), "\xED\xA0\x80");  // a surrogate
}

TEST(Normalizer, HuggingFaceSteps) {
  // Gemma's: every ' ' becomes '▁'.
  Normalizer gemma = Normalizer::from_json(
      json::parse(R"({"type":"Replace","pattern":{"String":" "},"content":"\u2581"})"), "t.json");
  EXPECT_EQ(gemma.apply(" a  b "),
            "\xE2\x96\x81"
            "a\xE2\x96\x81\xE2\x96\x81"
            "b\xE2\x96\x81");
  // Llama 2's: Prepend '▁' (only to non-empty text), then Replace.
  Normalizer llama2 = Normalizer::from_json(json::parse(R"({"type":"Sequence","normalizers":[
      {"type":"Prepend","prepend":"\u2581"},
      {"type":"Replace","pattern":{"String":" "},"content":"\u2581"}]})"),
                                            "t.json");
  EXPECT_EQ(llama2.apply("a b"),
            "\xE2\x96\x81"
            "a\xE2\x96\x81"
            "b");
  EXPECT_EQ(llama2.apply(""), "");
  // Steps run in order: NFKC then Replace sees the "fi" that ﬁ became.
  Normalizer seq = Normalizer::from_json(json::parse(R"({"type":"Sequence","normalizers":[
      {"type":"NFKC"}, {"type":"Replace","pattern":{"String":"fi"},"content":"F"}]})"),
                                         "t.json");
  EXPECT_EQ(seq.apply("\xEF\xAC\x81x"), "Fx");
  EXPECT_TRUE(Normalizer::from_json(json(), "t.json").empty());
}

TEST(Normalizer, RefusesWhatItDoesNotApply) {
  auto error_of = [](const char* text) -> std::string {
    try {
      Normalizer::from_json(json::parse(text), "t.json");
    } catch (const InputError& e) {
      EXPECT_EQ(e.where(), "t.json");
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(error_of(R"({"type":"Lowercase"})").find("normalizer Lowercase is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"type":"Replace","pattern":{"Regex":" +"},"content":" "})")
                .find("expected a non-empty {\"String\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Precompiled"}]})")
                .find("normalizer Precompiled"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"type":"Prepend"})").find("no string \"prepend\""), std::string::npos);
}

}  // namespace
}  // namespace sparc
