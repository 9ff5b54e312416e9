// Hugging Face directories against an independent PyTorch reference
// (tests/reference/hf_reference.py, run with Debian's python3-torch).
#include "model/hf_model.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "model/model_loader.h"
#include "model/transformer.h"
#include "test_util.h"
#include "model/reference_python.h"

namespace sparc {
namespace {

using nlohmann::json;

const std::string kScript = std::string(SPARC_SOURCE_DIR) + "/tests/reference/hf_reference.py";

const std::string& reference_dir() { return test::reference_cases(kScript); }

torch::Tensor reference_logits(const json& ref) {
  std::vector<double> flat;
  for (const auto& row : ref["logits"])
    for (const auto& v : row) flat.push_back(v.get<double>());
  return torch::tensor(flat, torch::kFloat64).view({std::int64_t(ref["logits"].size()), -1});
}

torch::Tensor our_logits(const std::string& dir, const std::vector<std::int64_t>& tokens,
                         torch::Dtype dtype = torch::kFloat32) {
  auto src = open_model(dir);
  ModelOptions opt;
  opt.dtype = dtype;
  Transformer model(*src, opt);
  return model.forward(torch::tensor(tokens).unsqueeze(0)).squeeze(0).to(torch::kFloat64);
}

class HfReference : public ::testing::TestWithParam<const char*> {};

TEST_P(HfReference, LogitsMatchPyTorchReferenceF32) {
  REQUIRE_REFERENCE();
  const std::string dir = reference_dir() + "/" + GetParam();
  json ref = json::parse(read_text_file(dir + "/reference.json"));
  auto expected = reference_logits(ref);
  auto got = our_logits(dir, ref["tokens"].get<std::vector<std::int64_t>>());
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_LE((got - expected).abs().max().item<double>(), 1e-4);
  // The comparison has teeth: logits vary across positions and tokens.
  EXPECT_GT(expected.std().item<double>(), 0.1);
}

INSTANTIATE_TEST_SUITE_P(Families, HfReference,
                         ::testing::Values("llama_gqa", "qwen2_bias_sharded", "llama_bf16", "gpt2"));

TEST(HfModel, ShardedIndexAndBiasAreRead) {
  REQUIRE_REFERENCE();
  auto src = open_model(reference_dir() + "/qwen2_bias_sharded");
  EXPECT_TRUE(src->config().qkv_bias);
  EXPECT_TRUE(src->config().tie_embeddings);
  EXPECT_EQ(src->config().n_kv_heads, 2);
  EXPECT_EQ(src->stored_name("layers.1.k.bias"), "model.layers.1.self_attn.k_proj.bias");
}

TEST(HfModel, Aidreams260KAsHfDirectoryMatchesLlama2cLoader) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  const std::string bin = test::shared_dir() + "/models/aidreams260K/model.bin";
  const std::string dir = test::make_temp_dir() + "/aidreams-hf";
  write_hf_llama_directory(*open_model(bin), dir);
  std::vector<std::int64_t> tokens = {1, 262, 400, 35, 290, 17, 450, 500, 3, 120};
  auto from_bin = our_logits(bin, tokens);
  auto from_dir = our_logits(dir, tokens);
  EXPECT_EQ((from_bin - from_dir).abs().max().item<double>(), 0.0);

  // The independent reference reads the directory with its own rotate_half
  // RoPE: agreement shows the row permutation turned pair RoPE into half RoPE.
  REQUIRE_REFERENCE();
  std::string out = test::make_temp_dir() + "/eval.json";
  std::string cmd = std::string(SPARC_REFERENCE_PYTHON) + " " + kScript + " --eval " + dir +
                    " --tokens 1,262,400,35,290,17,450,500,3,120 > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto expected = reference_logits(json::parse(read_text_file(out)));
  EXPECT_LE((from_bin - expected).abs().max().item<double>(), 1e-4);
}

TEST(HfConfig, TinyLlamaStyleConfigFields) {
  // TinyLlama-1.1B's config.json (abridged): 22 layers, 32 heads, 4 kv heads.
  auto c = parse_hf_config(R"({"model_type": "llama", "hidden_size": 2048,
      "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
      "num_key_value_heads": 4, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
      "vocab_size": 32000, "max_position_embeddings": 2048, "tie_word_embeddings": false,
      "hidden_act": "silu", "rope_scaling": null})",
                           "config.json");
  EXPECT_EQ(c.arch, Arch::kLlama);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.kv_dim(), 256);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.tie_embeddings);
  // Published size of TinyLlama-1.1B: 1,100,048,384 parameters.
  EXPECT_EQ(c.parameter_count(), 1100048384);
}

TEST(HfConfig, Gpt2SmallParameterCount) {
  auto c = parse_hf_config(R"({"model_type": "gpt2", "n_embd": 768, "n_layer": 12,
      "n_head": 12, "n_positions": 1024, "vocab_size": 50257, "layer_norm_epsilon": 1e-05,
      "activation_function": "gelu_new"})",
                           "config.json");
  EXPECT_EQ(c.ffn_dim, 3072);
  // GPT-2 small: 124,439,808 parameters (tied output layer).
  EXPECT_EQ(c.parameter_count(), 124439808);
}

void expect_input_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected InputError containing: " << needle;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(HfConfig, BadConfigsAreNamed) {
  expect_input_error([] { parse_hf_config(R"({"model_type": "bert"})", "c.json"); },
                     "c.json: unknown model_type 'bert'");
  expect_input_error([] { parse_hf_config("{not json", "c.json"); }, "c.json: invalid JSON");
  expect_input_error(
      [] {
        parse_hf_config(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
            "num_attention_heads": 4, "vocab_size": 8})", "c.json");
      },
      "c.json: missing field 'intermediate_size'");
  expect_input_error([] {
    parse_hf_config(R"({"model_type": "llama", "hidden_size": "64", "intermediate_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 8})", "c.json");
  }, "field 'hidden_size' must be an integer");
  expect_input_error([] {
    parse_hf_config(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 3,
        "vocab_size": 8})", "c.json");
  }, "must be a multiple of key/value heads");
}

// A llama directory written with our writer, then damaged.
std::string damaged_directory(const std::string& drop, const std::string& reshape) {
  ModelConfig c;
  c.vocab_size = 16;
  c.dim = 8;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.ffn_dim = 12;
  c.max_seq_len = 16;
  auto good = random_weights(c, 1);
  const std::string dir = test::make_temp_dir() + "/m";
  write_hf_llama_directory(*good, dir);
  SafetensorsReader r(dir + "/model.safetensors");
  SafetensorsWriter w;
  for (const auto& t : r.tensors()) {
    if (t.name == drop) continue;
    auto shape = t.shape;
    std::vector<std::uint8_t> bytes(t.end - t.begin);
    r.read(t.name, bytes.data());
    if (t.name == reshape) {
      shape = {shape[0] * shape[1]};
    }
    w.add(t.name, t.dtype, shape, bytes.data(), bytes.size());
  }
  w.write(dir + "/model.safetensors");
  return dir;
}

TEST(HfModel, MissingTensorNamedByItsStoredName) {
  auto dir = damaged_directory("model.layers.0.mlp.up_proj.weight", "");
  expect_input_error([&] { Transformer m(*open_model(dir), {}); },
                     "missing tensor 'model.layers.0.mlp.up_proj.weight'");
}

TEST(HfModel, WrongShapeNamedWithBothShapes) {
  auto dir = damaged_directory("", "model.layers.0.self_attn.k_proj.weight");
  expect_input_error([&] { Transformer m(*open_model(dir), {}); },
                     "'model.layers.0.self_attn.k_proj.weight' has shape [64], expected [8, 8]");
}

TEST(HfModel, DirectoryWithoutConfigOrWeights) {
  auto dir = test::make_temp_dir();
  expect_input_error([&] { open_model(dir); }, "no config.json");
  std::ofstream(dir + "/config.json") << R"({"model_type": "gpt2", "n_embd": 8, "n_layer": 1,
      "n_head": 2, "n_positions": 8, "vocab_size": 8})";
  expect_input_error([&] { open_model(dir); }, "no model.safetensors");
}

}  // namespace
}  // namespace sparc
