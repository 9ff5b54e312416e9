// The Hugging Face families beyond llama/qwen2/gpt2 (Llama 3.x RoPE scaling,
// Qwen3, Mistral's sliding window, Phi-3, Gemma 2, Gemma 3) against an independent float64
// PyTorch reference (tests/reference/hf_families_reference.py), plus config
// refusals, hand-computed RoPE frequencies and the parameter counts of
// published checkpoints. Gemma 2 and 3 likewise.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "model/hf_model.h"
#include "model/model_loader.h"
#include "model/transformer.h"
#include "test_util.h"
#include "model/reference_python.h"

namespace sparc {
namespace {

using nlohmann::json;

const std::string kScript =
    std::string(SPARC_SOURCE_DIR) + "/tests/reference/hf_families_reference.py";

const std::string& reference_dir() { return test::reference_cases(kScript); }

torch::Tensor matrix(const json& rows) {
  std::vector<double> flat;
  for (const auto& row : rows)
    for (const auto& v : row) flat.push_back(v.get<double>());
  return torch::tensor(flat, torch::kFloat64).view({std::int64_t(rows.size()), -1});
}

// sparc's logits for a case directory: its tokens after its prefix (if any).
torch::Tensor our_logits(const std::string& dir, const json& ref,
                         torch::Dtype dtype = torch::kFloat32) {
  auto src = open_model(dir);
  ModelOptions opt;
  opt.dtype = dtype;
  Transformer model(*src, opt);
  auto tokens = torch::tensor(ref["tokens"].get<std::vector<std::int64_t>>()).unsqueeze(0);
  torch::Tensor prefix;
  if (ref.contains("prefix")) prefix = matrix(ref["prefix"]).to(torch::kFloat32);
  torch::NoGradGuard no_grad;
  return model.forward(tokens, prefix).squeeze(0).to(torch::kFloat64);
}

// The case with config.json changed by a JSON merge patch (null removes a
// key), the weights linked: to show a feature changes the logits.
std::string patched(const std::string& name, const json& patch) {
  const std::string from = reference_dir() + "/" + name;
  const std::string to = test::make_temp_dir();
  json cfg = json::parse(read_text_file(from + "/config.json"));
  cfg.merge_patch(patch);
  std::ofstream(to + "/config.json") << cfg.dump();
  EXPECT_EQ(::symlink((from + "/model.safetensors").c_str(), (to + "/model.safetensors").c_str()), 0);
  return to;
}

struct Case {
  const char* name;
  const char* patch;  // what switches the case's feature off
};

const Case kCases[] = {
    {"llama3_rope", R"({"rope_scaling": null})"},
    {"llama_linear_rope", R"({"rope_scaling": null})"},
    {"llama_dynamic_rope", R"({"rope_parameters": {"rope_type": "default", "factor": null}})"},
    {"qwen3", R"({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]})"},
    {"qwen3_sliding", R"({"use_sliding_window": false})"},
    {"mistral_sliding", R"({"sliding_window": null})"},
    {"phi3_longrope_long", R"({"original_max_position_embeddings": 16})"},
    {"phi3_longrope_short", R"({"rope_scaling": null})"},
    {"phi3_sliding", R"({"sliding_window": null})"},
    {"gemma2", R"({"attn_logit_softcapping": null, "final_logit_softcapping": null})"},
    {"gemma3_text", R"({"rope_local_base_freq": 1000.0})"},
    {"gemma3_multimodal", R"({"text_config": {"query_pre_attn_scalar": 64}})"},
};

// gtest prints a parameter into the test's ctest name: the case's name, not its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// One test per case, four checks: each test process runs the reference
// script once, so fewer processes keep CI short.
class HfFamilyReference : public ::testing::TestWithParam<Case> {};

void expect_logits_match_f32(const std::string& dir, const json& ref) {
  const auto expected = matrix(ref["logits"]);
  const auto got = our_logits(dir, ref);
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_LE((got - expected).abs().max().item<double>(), 1e-4);
  EXPECT_GT(expected.std().item<double>(), 0.1);  // logits vary: the comparison has teeth
}

// Without the case's feature (scaling, norms, window, capping) the logits
// differ well beyond the tolerance above: the match is not a plain llama's.
void expect_feature_matters(const Case& c, const json& ref) {
  const std::string plain = patched(c.name, json::parse(c.patch));
  if (std::string(c.name) == "qwen3") {
    // A qwen2 reading of qwen3 weights has no q/k norms, and q/k/v biases it lacks.
    EXPECT_THROW(our_logits(plain, ref), InputError);
    return;
  }
  EXPECT_GT((our_logits(plain, ref) - matrix(ref["logits"])).abs().max().item<double>(), 1e-2);
}

// bf16 weights and activations (8 significant bits per operation): the mean
// error stays under 5% of the logits' spread (0.4% to 4% in these cases;
// single logits of the sharper LongRoPE cases move by up to 0.9). Switching
// a case's feature off moves them by 17% to 40% of the spread, so a wrong
// bf16 path would show.
void expect_bf16_near(const std::string& dir, const json& ref) {
  const auto expected = matrix(ref["logits"]);
  const auto got = our_logits(dir, ref, torch::kBFloat16);
  EXPECT_LE((got - expected).abs().mean().item<double>(), 0.05 * expected.std().item<double>());
}

// The backward of every family path (soft-capping, q/k and post norms,
// windows, scaled RoPE) in float64: a prompt's analytic gradient against
// central differences along a random direction.
void expect_prompt_gradient(const std::string& dir, const json& ref) {
  auto src = open_model(dir);
  ModelOptions f64;
  f64.dtype = torch::kFloat64;
  Transformer model(*src, f64);
  const auto D = model.config().dim;
  auto tokens = torch::tensor(ref["tokens"].get<std::vector<std::int64_t>>()).unsqueeze(0);
  auto prefix = at::normal(0.0, 0.5, {3, D}, at::detail::createCPUGenerator(31))
                    .to(torch::kFloat64).requires_grad_(true);
  // Over every position: with a sliding window the last one may not see the prompt.
  auto loss_of = [&](const torch::Tensor& p) {
    return torch::log_softmax(model.forward(tokens, p), -1).select(2, 9).sum().neg();
  };
  loss_of(prefix).backward();
  torch::NoGradGuard no_grad;
  auto dir_ = at::normal(0.0, 1.0, {3, D}, at::detail::createCPUGenerator(32)).to(torch::kFloat64);
  const double h = 1e-5;
  const double numeric = (loss_of(prefix + h * dir_) - loss_of(prefix - h * dir_)).item<double>() / (2 * h);
  const double analytic = (prefix.grad() * dir_).sum().item<double>();
  EXPECT_GT(std::abs(analytic), 1e-3);
  EXPECT_NEAR(numeric, analytic, 1e-6 * std::max(1.0, std::abs(analytic)));

  // float32 runs the fused softmax kernels (the soft-capped ones for Gemma 2)
  // forward and backward: the same gradient up to float32 rounding.
  torch::AutoGradMode grad_on(true);
  Transformer m32(*src, {});
  auto p32 = prefix.detach().to(torch::kFloat32).requires_grad_(true);
  torch::log_softmax(m32.forward(tokens, p32), -1).select(2, 9).sum().neg().backward();
  const auto g64 = prefix.grad();
  EXPECT_LE((p32.grad().to(torch::kFloat64) - g64).abs().max().item<double>(),
            1e-4 * g64.abs().max().item<double>());
}

TEST_P(HfFamilyReference, MatchesPyTorchReference) {
  REQUIRE_REFERENCE();
  const std::string dir = reference_dir() + "/" + GetParam().name;
  const json ref = json::parse(read_text_file(dir + "/reference.json"));
  {
    SCOPED_TRACE("f32 logits within 1e-4");
    expect_logits_match_f32(dir, ref);
  }
  {
    SCOPED_TRACE("the feature switched off changes the logits");
    expect_feature_matters(GetParam(), ref);
  }
  {
    SCOPED_TRACE("bf16 near the reference");
    expect_bf16_near(dir, ref);
  }
  {
    SCOPED_TRACE("prompt gradient against finite differences");
    expect_prompt_gradient(dir, ref);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfFamilyReference, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(HfFamilies, Phi3FusedProjectionsSplitIntoCanonicalNames) {
  REQUIRE_REFERENCE();
  auto src = open_model(reference_dir() + "/phi3_sliding");
  EXPECT_EQ(src->config().family, "phi3");
  EXPECT_EQ(src->config().sliding_window, 5);
  // 4 heads x 8, 2 kv heads x 8: k is rows 32..47 of qkv_proj.
  auto qkv = src->load("layers.0.q.weight");
  EXPECT_EQ(qkv.sizes(), (std::vector<std::int64_t>{32, 32}));
  EXPECT_EQ(src->meta("layers.1.k.weight").shape, (std::vector<std::int64_t>{16, 32}));
  EXPECT_EQ(src->meta("layers.1.up.weight").shape, (std::vector<std::int64_t>{48, 32}));
  EXPECT_EQ(src->stored_name("layers.1.up.weight"), "model.layers.1.mlp.gate_up_proj.weight");
}

// ---- RoPE frequencies, computed by hand ------------------------------------------

TEST(RopeScaling, Llama3FrequenciesByHand) {
  // head_dim 8, theta 500: inv_freq 500^(-j/4) = 1, 0.21147, 0.044721, 0.0094574;
  // wavelengths 2 pi / f = 6.28, 29.71, 140.5, 664.4. Llama 3.1's rule with
  // factor 8, low/high_freq_factor 1/4, original length 64 (bounds 64 and 16):
  // 6.28 < 16 stays; 140.5 and 664.4 > 64 are divided by 8; 29.71 between
  // interpolates with s = (64 / 29.711 - 1) / 3 = 0.384686:
  // f = (1 - s) f / 8 + s f = 0.0976166.
  RopeScaling s;
  s.type = RopeScaling::Type::kLlama3;
  s.factor = 8, s.low_freq_factor = 1, s.high_freq_factor = 4, s.original_max_positions = 64;
  auto f = rope_inv_freq(500.0, 8, s, 128, 0);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_DOUBLE_EQ(f[0], 1.0);
  EXPECT_NEAR(f[1], 0.09761663265652092, 1e-15);
  EXPECT_NEAR(f[2], 0.005590169943749474, 1e-15);
  EXPECT_NEAR(f[3], 0.0011821770112539697, 1e-15);
}

TEST(RopeScaling, LinearDynamicAndLongRopeByHand) {
  RopeScaling lin;
  lin.type = RopeScaling::Type::kLinear;
  lin.factor = 4;
  EXPECT_NEAR(rope_inv_freq(10000.0, 4, lin, 8, 100)[1], 0.01 / 4, 1e-15);  // 10000^(-1/2) / 4
  // Dynamic NTK, factor 2, trained length 8: within it, plain RoPE; at 13
  // positions the base becomes 300 (2 * 13 / 8 - 1)^(8 / 6) = 884.50.
  RopeScaling dyn;
  dyn.type = RopeScaling::Type::kDynamic;
  dyn.factor = 2;
  EXPECT_NEAR(rope_inv_freq(300.0, 8, dyn, 8, 7)[1], std::pow(300.0, -0.25), 1e-15);
  EXPECT_NEAR(rope_inv_freq(300.0, 8, dyn, 8, 12)[1], 0.18336882986198436, 1e-13);
  // LongRoPE: short factors up to the original length, long ones beyond.
  RopeScaling lr;
  lr.type = RopeScaling::Type::kLongRope;
  lr.original_max_positions = 8;
  lr.short_factor = {1.0, 2.0};
  lr.long_factor = {3.0, 5.0};
  EXPECT_NEAR(rope_inv_freq(100.0, 4, lr, 32, 7)[1], 0.1 / 2.0, 1e-15);  // 100^(-1/2) / 2
  EXPECT_NEAR(rope_inv_freq(100.0, 4, lr, 32, 8)[1], 0.1 / 5.0, 1e-15);
}

TEST(RopeScaling, LongRopeAttentionFactorOfPhi3Mini128k) {
  // Phi-3-mini-128k-instruct: max_position_embeddings 131072, original 4096:
  // factor 32, attention factor sqrt(1 + ln 32 / ln 4096) = sqrt(1 + 5/12).
  std::string longf = "[", shortf = "[";
  for (int i = 0; i < 48; ++i) longf += (i ? ",1.5" : "1.5"), shortf += (i ? ",1.0" : "1.0");
  auto c = parse_hf_config(R"({"model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
      "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
      "vocab_size": 32064, "max_position_embeddings": 131072,
      "original_max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
      "sliding_window": 262144, "hidden_act": "silu",
      "rope_scaling": {"type": "longrope", "long_factor": )" + longf + "], \"short_factor\": " +
                               shortf + "]}}",
                           "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLongRope);
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_NEAR(c.rope_scaling.attention_factor, std::sqrt(1.0 + 5.0 / 12.0), 1e-15);
}

// ---- refusals ----------------------------------------------------------------------

void expect_input_error(const std::string& config, const std::string& needle) {
  try {
    parse_hf_config(config, "c.json");
    ADD_FAILURE() << "expected InputError containing: " << needle;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

std::string llama_with(const std::string& extra) {
  return R"({"model_type": "llama", "hidden_size": 32, "intermediate_size": 48,
      "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 64)" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

TEST(HfFamilies, UnsupportedValuesAreNamed) {
  expect_input_error(llama_with(R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0})"),
                     "c.json: rope_scaling.rope_type 'yarn' is not supported");
  expect_input_error(llama_with(R"("rope_parameters": {"rope_type": "ntk", "factor": 4.0})"),
                     "rope_parameters.rope_type 'ntk'");
  expect_input_error(llama_with(R"("rope_scaling": {"type": "linear"})"),
                     "rope_scaling.factor: missing");
  expect_input_error(llama_with(R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0,
      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"),
                     "rope_scaling.low_freq_factor: missing");
  expect_input_error(llama_with(R"("rope_scaling": {"type": "dynamic", "factor": -2})"),
                     "rope_scaling.factor = -2, expected a positive number");
  expect_input_error(llama_with(R"("rope_scaling": {"type": "longrope", "short_factor": [1, 1],
      "long_factor": [1, 1, 1, 1]})"),
                     "short_factor/long_factor have 2 entries, expected head_dim / 2 = 4");
  expect_input_error(llama_with(R"("hidden_act": "gelu")"), "hidden_act \"gelu\" is not supported");
  expect_input_error(R"({"model_type": "mistral", "hidden_size": 32, "intermediate_size": 48,
      "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 64, "sliding_window": 4,
      "layer_types": ["sliding_attention", "chunked_attention"]})",
                     "layer_types holds \"chunked_attention\"");
  expect_input_error(R"({"model_type": "phi3", "hidden_size": 32, "intermediate_size": 48,
      "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 64,
      "partial_rotary_factor": 0.75})",
                     "partial_rotary_factor 0.75 is not supported");
  expect_input_error(R"({"model_type": "bert"})",
                     "unknown model_type 'bert', expected one of llama, mistral, qwen2, qwen3, phi3");
}

// ---- parameter counts of published checkpoints ------------------------------------
// Each config's fields are those of the checkpoint's config.json on the
// Hugging Face hub; the expected count is the `metadata.total_size` of its
// model.safetensors.index.json (bytes of bf16 tensors) divided by 2. Those
// indexes are not in public GitHub repositories as files; the totals were
// found quoted in several (tests, fixtures and notes citing the index).

TEST(HfFamilies, Llama31_8BParameterCount) {
  // meta-llama/Llama-3.1-8B config.json; total_size 16060522496.
  auto c = parse_hf_config(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
      "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
      "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
      "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
      "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 8192, "rope_type": "llama3"},
      "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false,
      "hidden_act": "silu", "torch_dtype": "bfloat16"})",
                           "config.json");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_EQ(c.parameter_count(), 16060522496 / 2);
}

TEST(HfFamilies, Qwen3_8BParameterCount) {
  // Qwen/Qwen3-8B config.json (head_dim 128 given, q/k norms); total_size 16381470720.
  auto c = parse_hf_config(R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
      "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
      "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
      "vocab_size": 151936, "max_position_embeddings": 40960, "rms_norm_eps": 1e-06,
      "rope_theta": 1000000, "rope_scaling": null, "tie_word_embeddings": false,
      "attention_bias": false, "use_sliding_window": false, "sliding_window": null,
      "max_window_layers": 36, "hidden_act": "silu", "torch_dtype": "bfloat16"})",
                           "config.json");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.parameter_count(), 16381470720 / 2);
}

TEST(HfFamilies, Phi3Mini4kParameterCount) {
  // microsoft/Phi-3-mini-4k-instruct config.json; total_size 7642159104.
  auto c = parse_hf_config(R"({"architectures": ["Phi3ForCausalLM"], "model_type": "phi3",
      "hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32,
      "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
      "max_position_embeddings": 4096, "original_max_position_embeddings": 4096,
      "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": null,
      "sliding_window": 2047, "tie_word_embeddings": false, "attention_bias": false,
      "hidden_act": "silu", "torch_dtype": "bfloat16"})",
                           "config.json");
  EXPECT_EQ(c.sliding_window, 2047);
  EXPECT_EQ(c.parameter_count(), 7642159104 / 2);
}

TEST(HfFamilies, Gemma2_9BParameterCount) {
  // google/gemma-2-9b config.json (head_dim 256, tied embeddings, four norms
  // a layer); total_size 18483411968.
  auto c = parse_hf_config(R"({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
      "hidden_size": 3584, "intermediate_size": 14336, "num_hidden_layers": 42,
      "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
      "vocab_size": 256000, "max_position_embeddings": 8192, "rms_norm_eps": 1e-06,
      "rope_theta": 10000.0, "query_pre_attn_scalar": 256, "sliding_window": 4096,
      "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
      "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
      "attention_bias": false, "tie_word_embeddings": true, "torch_dtype": "float32"})",
                           "config.json");
  EXPECT_TRUE(c.gemma);
  EXPECT_DOUBLE_EQ(c.query_scale, 1.0 / 16.0);
  EXPECT_EQ(c.sliding_layers, (std::vector<bool>{true, false, true, false, true, false, true, false,
                                                 true, false, true, false, true, false, true, false,
                                                 true, false, true, false, true, false, true, false,
                                                 true, false, true, false, true, false, true, false,
                                                 true, false, true, false, true, false, true, false,
                                                 true, false}));
  EXPECT_EQ(c.parameter_count(), 18483411968 / 2);
  EXPECT_DOUBLE_EQ(c.attn_softcap, 50.0);
  EXPECT_DOUBLE_EQ(c.final_softcap, 30.0);
}

TEST(HfFamilies, GemmaSoftCappingAbsentTakesTheDefaultNullTurnsItOff) {
  const std::string base = R"({"model_type": "gemma2", "hidden_size": 32, "intermediate_size": 48,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
      "vocab_size": 64)";
  auto absent = parse_hf_config(base + "}", "c.json");
  EXPECT_DOUBLE_EQ(absent.attn_softcap, 50.0);  // Gemma2Config's defaults
  EXPECT_DOUBLE_EQ(absent.final_softcap, 30.0);
  auto off = parse_hf_config(
      base + R"(, "attn_logit_softcapping": null, "final_logit_softcapping": null})", "c.json");
  EXPECT_EQ(off.attn_softcap, 0.0);
  EXPECT_EQ(off.final_softcap, 0.0);
  // Gemma 3 has none unless asked; every sixth layer is global.
  auto g3 = parse_hf_config(R"({"model_type": "gemma3_text", "hidden_size": 32,
      "intermediate_size": 48, "num_hidden_layers": 7, "num_attention_heads": 4,
      "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 64})", "c.json");
  EXPECT_EQ(g3.attn_softcap, 0.0);
  EXPECT_EQ(g3.sliding_layers, (std::vector<bool>{true, true, true, true, true, false, true}));
  EXPECT_DOUBLE_EQ(g3.rope_theta, 1000000.0);
  EXPECT_DOUBLE_EQ(g3.rope_local_theta, 10000.0);
  EXPECT_EQ(g3.sliding_window, 4096);
  // Transformers 5's per-layer-type spelling.
  auto g3v5 = parse_hf_config(R"({"model_type": "gemma3_text", "hidden_size": 32,
      "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 64, "rope_parameters": {
      "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 500000.0},
      "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}}})", "c.json");
  EXPECT_EQ(g3v5.rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_DOUBLE_EQ(g3v5.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(g3v5.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(g3v5.rope_local_theta, 20000.0);
  expect_input_error(llama_with(R"("rope_parameters": {"full_attention": {"rope_type": "default"}})"),
                     "rope_parameters per layer type is read for Gemma 3 only");
}

}  // namespace
}  // namespace sparc
