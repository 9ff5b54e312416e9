#include "tokenizer/byte_tokenizer.h"

#include "core/error.h"
#include "test_util.h"

namespace sparc {
namespace {

TEST(ByteTokenizer, Specials) {
  ByteTokenizer t;
  EXPECT_EQ(t.vocab_size(), 259);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.piece(0), "<pad>");
  EXPECT_EQ(t.piece(1), "<bos>");
  EXPECT_EQ(t.piece(2), "<eos>");
  EXPECT_EQ(t.piece(3 + 'A'), "A");
  EXPECT_EQ(t.piece(3 + '\n'), "<0x0A>");
  EXPECT_EQ(t.piece(258), "<0xFF>");
}

TEST(ByteTokenizer, ExactIds) {
  ByteTokenizer t;
  // 'H' = 72, 'i' = 105, '!' = 33, each plus 3.
  EXPECT_EQ(t.encode("Hi!"), (std::vector<std::int32_t>{75, 108, 36}));
  // "é" is the two bytes C3 A9: 195 + 3, 169 + 3.
  EXPECT_EQ(t.encode("é"), (std::vector<std::int32_t>{198, 172}));
  EXPECT_EQ(t.encode_with_bos("Hi"), (std::vector<std::int32_t>{1, 75, 108}));
  EXPECT_TRUE(t.encode("").empty());
}

TEST(ByteTokenizer, RoundTripsEveryByte) {
  ByteTokenizer t;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  all += all;  // also 0xFF followed by 0x00
  auto ids = t.encode(all);
  ASSERT_EQ(ids.size(), all.size());
  EXPECT_EQ(ids.front(), 3);    // 0x00
  EXPECT_EQ(ids[255], 258);     // 0xFF
  EXPECT_EQ(t.decode(ids), all);
}

TEST(ByteTokenizer, DecodeSkipsSpecials) {
  ByteTokenizer t;
  EXPECT_EQ(t.decode({1, 75, 0, 0, 108, 2}), "Hi");
  EXPECT_EQ(t.decode({0, 1, 2}), "");
}

TEST(ByteTokenizer, OutOfRangeIdsAreErrors) {
  ByteTokenizer t;
  EXPECT_THROW(t.decode({259}), InputError);
  EXPECT_THROW(t.decode({-1}), InputError);
  EXPECT_THROW(t.piece(259), InputError);
}

TEST(ByteTokenizer, LoadTokenizerByName) {
  auto t = load_tokenizer("bytes");
  EXPECT_EQ(t->vocab_size(), 259);
  EXPECT_EQ(t->encode("Hi!"), (std::vector<std::int32_t>{75, 108, 36}));
}

}  // namespace
}  // namespace sparc
