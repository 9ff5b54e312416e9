#include "formats/llama2c.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "test_util.h"

namespace sparc {
namespace {

std::string header_bytes(std::vector<std::int32_t> fields) {
  return std::string(reinterpret_cast<const char*>(fields.data()), fields.size() * 4);
}

std::string expect_error(const std::string& bytes) {
  try {
    parse_llama2c(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), "f.bin");
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("f.bin: ", 0), 0u) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected InputError";
  return {};
}

// dim 4, hidden 6, 1 layer, 2 heads, 1 kv head, vocab 3, seq_len 5.
// Floats: emb 12, rms_att 4, wq 16, wk 8, wv 8, wo 16, rms_ffn 4, w1 24,
// w2 24, w3 24, final 4, RoPE tables 5 x 2 = 10 -> 154.
constexpr std::size_t kLegacyFloats = 154;

TEST(Llama2c, LegacyLayoutOffsetsByHand) {
  std::string bytes = header_bytes({4, 6, 1, 2, 1, 3, 5});
  bytes.append(kLegacyFloats * 4, '\0');
  auto layout = parse_llama2c(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), "f");
  EXPECT_EQ(layout.header.version, 0);
  EXPECT_TRUE(layout.header.shared_classifier);
  EXPECT_EQ(layout.header.kv_dim(), 2);
  EXPECT_EQ(layout.tensors.at("token_embedding_table").offset, 28u);
  EXPECT_EQ(layout.tensors.at("rms_att_weight.0").offset, 28u + 12 * 4);
  EXPECT_EQ(layout.tensors.at("wq.0").offset, 28u + 16 * 4);
  EXPECT_EQ(layout.tensors.at("wk.0").offset, 28u + 32 * 4);
  EXPECT_EQ(layout.tensors.at("wk.0").shape, (std::vector<std::int64_t>{2, 4}));
  EXPECT_EQ(layout.tensors.at("w2.0").shape, (std::vector<std::int64_t>{4, 6}));
  EXPECT_EQ(layout.tensors.at("rms_final_weight").offset, 28u + 140 * 4);
  EXPECT_EQ(layout.tensors.at("wcls").offset, 28u);  // shared with the embedding
}

TEST(Llama2c, LegacyNegativeVocabMeansSeparateClassifier) {
  std::string bytes = header_bytes({4, 6, 1, 2, 1, -3, 5});
  bytes.append((kLegacyFloats + 12) * 4, '\0');
  auto layout = parse_llama2c(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), "f");
  EXPECT_FALSE(layout.header.shared_classifier);
  EXPECT_EQ(layout.header.vocab_size, 3);
  EXPECT_EQ(layout.tensors.at("wcls").offset, 28u + kLegacyFloats * 4);
}

TEST(Llama2c, Version1LayoutPutsNormsFirst) {
  std::string bytes(256, '\0');
  const std::uint32_t magic = 0x616b3432;
  const std::int32_t version = 1;
  std::memcpy(&bytes[0], &magic, 4);
  std::memcpy(&bytes[4], &version, 4);
  auto h = header_bytes({4, 6, 1, 2, 1, 3, 5});
  std::memcpy(&bytes[8], h.data(), h.size());
  bytes[36] = 0;  // classifier stored separately
  // norms 4 + 4 + 4, embedding 12, wq..wo 48, w1..w3 72, classifier 12.
  bytes.append((12 + 12 + 48 + 72 + 12) * 4, '\0');
  auto layout = parse_llama2c(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), "f");
  EXPECT_EQ(layout.header.version, 1);
  EXPECT_FALSE(layout.header.shared_classifier);
  EXPECT_EQ(layout.tensors.at("rms_att_weight.0").offset, 256u);
  EXPECT_EQ(layout.tensors.at("rms_final_weight").offset, 256u + 8 * 4);
  EXPECT_EQ(layout.tensors.at("token_embedding_table").offset, 256u + 12 * 4);
  EXPECT_EQ(layout.tensors.at("wcls").offset, 256u + 144 * 4);
}

TEST(Llama2c, BadInputsAreNamed) {
  EXPECT_NE(expect_error("short").find("too short"), std::string::npos);
  EXPECT_NE(expect_error(header_bytes({0, 6, 1, 2, 1, 3, 5})).find("dim = 0"), std::string::npos);
  EXPECT_NE(expect_error(header_bytes({5, 6, 1, 2, 1, 3, 5})).find("not divisible by n_heads"),
            std::string::npos);
  EXPECT_NE(expect_error(header_bytes({4, 6, 1, 2, 3, 3, 5})).find("n_kv_heads"), std::string::npos);
  EXPECT_NE(expect_error(header_bytes({6, 6, 1, 2, 2, 3, 5})).find("odd"), std::string::npos);
  std::string truncated = header_bytes({4, 6, 1, 2, 1, 3, 5});
  truncated.append((kLegacyFloats - 1) * 4, '\0');
  EXPECT_NE(expect_error(truncated).find("truncated"), std::string::npos);
  std::string v3(256, '\0');
  const std::uint32_t magic = 0x616b3432;
  const std::int32_t version = 3;
  std::memcpy(&v3[0], &magic, 4);
  std::memcpy(&v3[4], &version, 4);
  EXPECT_NE(expect_error(v3).find("version 3 is not supported"), std::string::npos);
}

// Found by fuzz_llama2c (tests/fuzz/regressions/llama2c): a 28-byte header
// claiming 327682 layers made the parser lay out 3 million tensors before
// comparing with the file size; now the size is checked first.
TEST(Llama2c, HugeLayerCountIsRefusedByItsSize) {
  std::string bytes = header_bytes({8, 65544, 327682, 2, 1, -4, 4});
  bytes.append(1064, '\0');
  const std::string e = expect_error(bytes);
  EXPECT_NE(e.find("n_layers=327682"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated or not a llama2.c file"), std::string::npos) << e;
}

// Sizes whose sum passes 2^64 must not wrap around to something plausible.
TEST(Llama2c, SizesBeyond64BitsAreRefused) {
  const std::int32_t big = 1 << 20;
  const std::string e = expect_error(header_bytes({big, big, big, 1024, 1024, 4, 4}));
  EXPECT_NE(e.find("implies more than 2^64"), std::string::npos) << e;
}

// -INT32_MIN does not exist: a legacy vocab size of INT32_MIN is a bad header
// (not undefined behaviour).
TEST(Llama2c, MinimumIntVocabIsABadHeader) {
  const std::string e = expect_error(header_bytes({8, 8, 1, 2, 2, INT32_MIN, 4}));
  EXPECT_NE(e.find("vocab_size = -2147483648"), std::string::npos) << e;
}

TEST(Llama2c, Aidreams260KHeaderMatchesPublishedShape) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  Llama2cCheckpoint ckpt(test::shared_dir() + "/models/aidreams260K/model.bin");
  const auto& h = ckpt.header();
  EXPECT_EQ(h.dim, 64);
  EXPECT_EQ(h.hidden_dim, 172);
  EXPECT_EQ(h.n_layers, 4);
  EXPECT_EQ(h.n_heads, 4);
  EXPECT_EQ(h.n_kv_heads, 4);
  EXPECT_EQ(h.vocab_size, 512);
  EXPECT_EQ(h.seq_len, 128);
  EXPECT_TRUE(h.shared_classifier);
  // RMSNorm gains of a trained model are not all zero.
  const float* g = ckpt.data("rms_final_weight");
  float sum = 0;
  for (int i = 0; i < 64; ++i) sum += std::abs(g[i]);
  EXPECT_GT(sum, 1.0f);
}

}  // namespace
}  // namespace sparc
