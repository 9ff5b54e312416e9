// sparc random-model's streaming writer against the holding one
// (write_hf_llama_directory over random_weights, tested in hf_model_test).
#include "model/random_model.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "model/hf_model.h"
#include "model/model_loader.h"
#include "model/weight_source.h"
#include "test_util.h"

namespace sparc {
namespace {

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

ModelConfig small_llama() {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.vocab_size = 300, c.dim = 32, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
  c.head_dim = 8, c.ffn_dim = 48, c.max_seq_len = 64;
  return c;
}

TEST(RandomModel, StreamedDirectoryEqualsTheHeldOneByteForByte) {
  ModelConfig c = small_llama();
  for (const std::string dtype : {"f32", "bf16"}) {
    SCOPED_TRACE(dtype);
    c.tie_embeddings = dtype == "f32";  // bf16 untied: an lm_head as in the 7B preset
    const std::string held = test::make_temp_dir(), streamed = test::make_temp_dir();
    write_hf_llama_directory(*random_weights(c, 7), held, dtype);
    write_random_llama_directory(c, 7, streamed, dtype);
    const std::string a = bytes_of(held + "/model.safetensors");
    ASSERT_GT(a.size(), std::size_t(c.parameter_count()) * (dtype == "f32" ? 4 : 2));
    EXPECT_TRUE(a == bytes_of(streamed + "/model.safetensors"));
    EXPECT_EQ(bytes_of(held + "/config.json"), bytes_of(streamed + "/config.json"));
  }
  c.tie_embeddings = true;
  // Another seed, other weights: the equality above is not of constant files.
  const std::string s7 = test::make_temp_dir(), s8 = test::make_temp_dir();
  write_random_llama_directory(c, 7, s7, "f32");
  write_random_llama_directory(c, 8, s8, "f32");
  EXPECT_NE(bytes_of(s7 + "/model.safetensors"), bytes_of(s8 + "/model.safetensors"));
  auto src = open_model(s7);
  EXPECT_TRUE(torch::equal(src->load("layers.1.down.weight"),
                           random_weights(c, 7)->load("layers.1.down.weight")));
}

TEST(RandomModel, RefusesAnUnknownDtype) {
  const std::string dir = test::make_temp_dir();
  EXPECT_THROW(write_random_llama_directory(small_llama(), 0, dir, "f8"), InputError);
}

}  // namespace
}  // namespace sparc
