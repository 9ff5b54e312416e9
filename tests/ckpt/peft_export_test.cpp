// Golden test of the PEFT export against the layout Hugging Face PEFT
// publishes (adapter_config.json + adapter_model.safetensors):
//   prompt tuning: one tensor "prompt_embeddings" [num_virtual_tokens, token_dim];
//     config keys of PromptTuningConfig (peft_type PROMPT_TUNING, task_type
//     CAUSAL_LM, num_virtual_tokens, token_dim, num_transformer_submodules,
//     num_attention_heads, num_layers, ...).
//   LoRA: "base_model.model.<module path>.lora_A.weight" [r, in] and
//     ".lora_B.weight" [out, r] for each adapted module, with the module paths
//     of the Hugging Face model class (LlamaForCausalLM: model.layers.<i>.
//     self_attn.q_proj ...); config keys of LoraConfig (peft_type LORA, r,
//     lora_alpha, target_modules, lora_dropout, bias, fan_in_fan_out, ...).
// The expectations are written out here by hand from that layout.
#include "ckpt/peft_export.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "formats/safetensors.h"
#include "test_util.h"

namespace sparc {
namespace {

// An adapter holding just its factors, as a checkpoint stores it.
std::shared_ptr<LoraAdapter> factors(torch::Tensor a, torch::Tensor b) {
  auto ad = std::make_shared<LoraAdapter>();
  ad->a = std::move(a);
  ad->b = std::move(b);
  return ad;
}

TrainingState trained(const std::string& method) {
  RunConfig c = parse_run_config(
      "model: {path: /models/tiny}\nlora: {rank: 4, alpha: 8, dropout: 0.1}\n"
      "tasks:\n  - {name: nature, train: a, test: b, verbalizer: {'0': x, '1': y}}\n"
      "  - {name: mood, train: a, test: b, verbalizer: {'0': x, '1': y}}\n",
      "x.yaml", "", {"method=" + method});
  TrainingState s;
  s.config_yaml = to_yaml(c);
  s.method = method;
  s.model_path = "/models/tiny";
  s.arch = "llama";
  s.dim = 64, s.n_layers = 2, s.n_heads = 8, s.n_kv_heads = 4, s.vocab_size = 512;
  s.tasks = {"nature", "mood"};
  for (const auto& name : s.tasks) {
    TaskRecord t;
    t.name = name;
    t.prompt = torch::randn({8, 64});
    for (int l = 0; l < 2; ++l) {
      // q: [out 64, in 64]; v: [out n_kv_heads * head_dim = 32, in 64]
      t.lora["layers." + std::to_string(l) + ".q"] = factors(torch::randn({4, 64}), torch::randn({64, 4}));
      t.lora["layers." + std::to_string(l) + ".v"] = factors(torch::randn({4, 64}), torch::randn({32, 4}));
    }
    s.library.push_back(t);
  }
  s.shared_lora = s.library[1].lora;
  return s;
}

std::set<std::string> keys(const nlohmann::json& j) {
  std::set<std::string> out;
  for (auto it = j.begin(); it != j.end(); ++it) out.insert(it.key());
  return out;
}

void expect_prompt_adapter(const std::string& dir, const TrainingState& s, const torch::Tensor& prompt) {
  auto cfg = nlohmann::json::parse(read_text_file(dir + "/adapter_config.json"));
  const std::set<std::string> expected = {
      "peft_type",        "task_type",          "num_virtual_tokens",      "token_dim",
      "num_transformer_submodules", "num_attention_heads", "num_layers", "prompt_tuning_init",
      "prompt_tuning_init_text", "tokenizer_name_or_path", "tokenizer_kwargs",
      "base_model_name_or_path", "revision", "inference_mode", "auto_mapping"};
  EXPECT_EQ(keys(cfg), expected);
  EXPECT_EQ(cfg["peft_type"], "PROMPT_TUNING");
  EXPECT_EQ(cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(cfg["num_virtual_tokens"], 8);
  EXPECT_EQ(cfg["token_dim"], 64);
  EXPECT_EQ(cfg["num_transformer_submodules"], 1);
  EXPECT_EQ(cfg["num_attention_heads"], 8);
  EXPECT_EQ(cfg["num_layers"], 2);
  EXPECT_EQ(cfg["base_model_name_or_path"], "/models/tiny");
  EXPECT_EQ(cfg["inference_mode"], true);

  SafetensorsReader r(dir + "/adapter_model.safetensors");
  ASSERT_EQ(r.tensors().size(), 1u);
  const auto& info = r.info("prompt_embeddings");
  EXPECT_EQ(info.dtype, DType::F32);
  EXPECT_EQ(info.shape, (std::vector<std::int64_t>{8, 64}));
  auto t = torch::empty({8, 64});
  r.read("prompt_embeddings", t.data_ptr());
  EXPECT_TRUE(torch::equal(t, prompt));
  EXPECT_EQ(r.metadata().at("format"), "pt");
}

void expect_lora_adapter(const std::string& dir, const LoraSet& lora) {
  auto cfg = nlohmann::json::parse(read_text_file(dir + "/adapter_config.json"));
  const std::set<std::string> expected = {
      "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias",
      "fan_in_fan_out", "modules_to_save", "init_lora_weights", "layers_to_transform",
      "layers_pattern", "rank_pattern", "alpha_pattern", "base_model_name_or_path", "revision",
      "inference_mode", "auto_mapping"};
  EXPECT_EQ(keys(cfg), expected);
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["task_type"], "CAUSAL_LM");
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  EXPECT_EQ(cfg["lora_dropout"], 0.1);
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"q_proj", "v_proj"}));
  EXPECT_EQ(cfg["bias"], "none");
  EXPECT_EQ(cfg["fan_in_fan_out"], false);
  EXPECT_EQ(cfg["inference_mode"], true);

  SafetensorsReader r(dir + "/adapter_model.safetensors");
  std::map<std::string, std::vector<std::int64_t>> expected_shapes;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "base_model.model.model.layers." + std::to_string(l) + ".self_attn.";
    expected_shapes[p + "q_proj.lora_A.weight"] = {4, 64};
    expected_shapes[p + "q_proj.lora_B.weight"] = {64, 4};
    expected_shapes[p + "v_proj.lora_A.weight"] = {4, 64};
    expected_shapes[p + "v_proj.lora_B.weight"] = {32, 4};
  }
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& t : r.tensors()) shapes[t.name] = t.shape;
  EXPECT_EQ(shapes, expected_shapes);
  auto a = torch::empty({4, 64});
  r.read("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight", a.data_ptr());
  EXPECT_TRUE(torch::equal(a, lora.at("layers.1.v")->a));
  auto b = torch::empty({32, 4});
  r.read("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", b.data_ptr());
  EXPECT_TRUE(torch::equal(b, lora.at("layers.1.v")->b));
}

TEST(PeftExport, SparcWritesOnePromptTuningAdapter) {
  const auto s = trained("sparc");
  const std::string out = test::make_temp_dir() + "/peft";
  EXPECT_EQ(export_peft(s, "mood", out), std::vector<std::string>{out});
  expect_prompt_adapter(out, s, s.library[1].prompt);
}

TEST(PeftExport, SparcLoraWritesPromptAndLoraAdapters) {
  const auto s = trained("sparc+lora");
  const std::string out = test::make_temp_dir() + "/peft";
  EXPECT_EQ(export_peft(s, "nature", out), (std::vector<std::string>{out + "/prompt", out + "/lora"}));
  expect_prompt_adapter(out + "/prompt", s, s.library[0].prompt);
  expect_lora_adapter(out + "/lora", s.library[0].lora);
}

TEST(PeftExport, LoraWritesTheSharedAdapters) {
  const auto s = trained("lora");
  const std::string out = test::make_temp_dir() + "/peft";
  export_peft(s, "nature", out);
  expect_lora_adapter(out, s.shared_lora);
}

TEST(PeftExport, RefusalsNameTheReason) {
  const std::string out = test::make_temp_dir() + "/peft";
  try {
    export_peft(trained("sparc"), "count", out);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("finished: nature, mood"), std::string::npos) << e.what();
  }
  EXPECT_THROW(export_peft(trained("full"), "nature", out), InputError);
  EXPECT_EQ(hf_module_path("llama", "layers.3.down"), "model.layers.3.mlp.down_proj");
  EXPECT_EQ(hf_module_path("gpt2", "layers.2.o"), "transformer.h.2.attn.c_proj");
  EXPECT_THROW(hf_module_path("gpt2", "layers.2.q"), InputError);
}

// gpt2 (GPT2LMHeadModel): q, k, v live in one Conv1D, transformer.h.<i>.attn.c_attn,
// whose output is [q; k; v] (D rows each). PEFT adapts c_attn as a whole, so a
// layer's q and v adapters (rank r each) become one of rank 2r: lora_A stacks
// A_q over A_v, lora_B holds B_q in the q rows (first r columns) and B_v in
// the v rows (last r columns), zeros elsewhere; rank_pattern/alpha_pattern give
// c_attn rank 2r and alpha 2 * alpha, so the scale alpha / r is unchanged.
TEST(PeftExport, Gpt2FusesQkvAdaptersIntoCAttn) {
  auto s = trained("lora");
  s.arch = "gpt2";
  s.shared_lora.clear();
  const std::int64_t D = 64, r = 4;
  for (int l = 0; l < 2; ++l) {
    s.shared_lora["layers." + std::to_string(l) + ".q"] = factors(torch::randn({r, D}), torch::randn({D, r}));
    s.shared_lora["layers." + std::to_string(l) + ".v"] = factors(torch::randn({r, D}), torch::randn({D, r}));
    s.shared_lora["layers." + std::to_string(l) + ".o"] = factors(torch::randn({r, D}), torch::randn({D, r}));
  }
  const std::string out = test::make_temp_dir() + "/peft";
  export_peft(s, "nature", out);
  auto cfg = nlohmann::json::parse(read_text_file(out + "/adapter_config.json"));
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"c_attn", "c_proj"}));
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["lora_alpha"], 8.0);
  EXPECT_EQ(cfg["rank_pattern"], nlohmann::json({{"c_attn", 8}}));
  EXPECT_EQ(cfg["alpha_pattern"], nlohmann::json({{"c_attn", 16.0}}));
  EXPECT_EQ(cfg["fan_in_fan_out"], true);

  SafetensorsReader rd(out + "/adapter_model.safetensors");
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& t : rd.tensors()) shapes[t.name] = t.shape;
  std::map<std::string, std::vector<std::int64_t>> expected;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "base_model.model.transformer.h." + std::to_string(l) + ".attn.";
    expected[p + "c_attn.lora_A.weight"] = {2 * r, D};
    expected[p + "c_attn.lora_B.weight"] = {3 * D, 2 * r};
    expected[p + "c_proj.lora_A.weight"] = {r, D};
    expected[p + "c_proj.lora_B.weight"] = {D, r};
  }
  EXPECT_EQ(shapes, expected);
  // The fused adapter computes exactly the q and v updates, and nothing for k.
  auto a = torch::empty({2 * r, D}), b = torch::empty({3 * D, 2 * r});
  rd.read("base_model.model.transformer.h.1.attn.c_attn.lora_A.weight", a.data_ptr());
  rd.read("base_model.model.transformer.h.1.attn.c_attn.lora_B.weight", b.data_ptr());
  auto x = torch::randn({5, D});
  auto fused = torch::matmul(torch::matmul(x, a.t()), b.t());  // [5, 3D]
  const auto& q = s.shared_lora.at("layers.1.q");
  const auto& v = s.shared_lora.at("layers.1.v");
  auto want_q = torch::matmul(torch::matmul(x, q->a.t()), q->b.t());
  auto want_v = torch::matmul(torch::matmul(x, v->a.t()), v->b.t());
  EXPECT_TRUE(torch::allclose(fused.slice(1, 0, D), want_q, 1e-5, 1e-5));
  EXPECT_TRUE(torch::equal(fused.slice(1, D, 2 * D), torch::zeros({5, D})));
  EXPECT_TRUE(torch::allclose(fused.slice(1, 2 * D, 3 * D), want_v, 1e-5, 1e-5));
}

// Phi-3 stores q, k, v in one qkv_proj (rows [q; k; v]: 8 heads x 8, then
// 4 kv heads x 8 twice) and gate, up in one gate_up_proj (rows [gate; up]):
// adapters on q, k, v (and on gate, up) become one adapter on the fused
// module, rank 3r (2r), whose update is exactly each part's update in its
// row range.
TEST(PeftExport, Phi3FusesQkvIntoQkvProjAndGateUpIntoGateUpProj) {
  auto s = trained("lora");
  s.arch = "phi3";
  s.shared_lora.clear();
  const std::int64_t D = 64, r = 4, Q = 64, KV = 32, F = 96;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    s.shared_lora[p + "q"] = factors(torch::randn({r, D}), torch::randn({Q, r}));
    s.shared_lora[p + "k"] = factors(torch::randn({r, D}), torch::randn({KV, r}));
    s.shared_lora[p + "v"] = factors(torch::randn({r, D}), torch::randn({KV, r}));
    s.shared_lora[p + "gate"] = factors(torch::randn({r, D}), torch::randn({F, r}));
    s.shared_lora[p + "up"] = factors(torch::randn({r, D}), torch::randn({F, r}));
    s.shared_lora[p + "down"] = factors(torch::randn({r, F}), torch::randn({D, r}));
  }
  const std::string out = test::make_temp_dir() + "/peft";
  export_peft(s, "nature", out);
  auto cfg = nlohmann::json::parse(read_text_file(out + "/adapter_config.json"));
  EXPECT_EQ(cfg["target_modules"], nlohmann::json({"down_proj", "gate_up_proj", "qkv_proj"}));
  EXPECT_EQ(cfg["r"], 4);
  EXPECT_EQ(cfg["rank_pattern"], nlohmann::json({{"qkv_proj", 12}, {"gate_up_proj", 8}}));
  EXPECT_EQ(cfg["alpha_pattern"], nlohmann::json({{"qkv_proj", 24.0}, {"gate_up_proj", 16.0}}));
  EXPECT_EQ(cfg["fan_in_fan_out"], false);

  SafetensorsReader rd(out + "/adapter_model.safetensors");
  std::map<std::string, std::vector<std::int64_t>> shapes;
  for (const auto& t : rd.tensors()) shapes[t.name] = t.shape;
  std::map<std::string, std::vector<std::int64_t>> expected;
  for (int l = 0; l < 2; ++l) {
    const std::string p = "base_model.model.model.layers." + std::to_string(l) + ".";
    expected[p + "self_attn.qkv_proj.lora_A.weight"] = {3 * r, D};
    expected[p + "self_attn.qkv_proj.lora_B.weight"] = {Q + 2 * KV, 3 * r};
    expected[p + "mlp.gate_up_proj.lora_A.weight"] = {2 * r, D};
    expected[p + "mlp.gate_up_proj.lora_B.weight"] = {2 * F, 2 * r};
    expected[p + "mlp.down_proj.lora_A.weight"] = {r, F};
    expected[p + "mlp.down_proj.lora_B.weight"] = {D, r};
  }
  EXPECT_EQ(shapes, expected);
  auto x = torch::randn({5, D});
  auto update = [&](const std::string& site) {
    const auto& ad = s.shared_lora.at(site);
    return torch::matmul(torch::matmul(x, ad->a.t()), ad->b.t());
  };
  auto fused_update = [&](const std::string& module, std::int64_t rank, std::int64_t rows) {
    auto a = torch::empty({rank, D}), b = torch::empty({rows, rank});
    rd.read("base_model.model.model.layers.1." + module + ".lora_A.weight", a.data_ptr());
    rd.read("base_model.model.model.layers.1." + module + ".lora_B.weight", b.data_ptr());
    return torch::matmul(torch::matmul(x, a.t()), b.t());
  };
  auto qkv = fused_update("self_attn.qkv_proj", 3 * r, Q + 2 * KV);
  EXPECT_TRUE(torch::allclose(qkv.slice(1, 0, Q), update("layers.1.q"), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(qkv.slice(1, Q, Q + KV), update("layers.1.k"), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(qkv.slice(1, Q + KV, Q + 2 * KV), update("layers.1.v"), 1e-5, 1e-5));
  auto gate_up = fused_update("mlp.gate_up_proj", 2 * r, 2 * F);
  EXPECT_TRUE(torch::allclose(gate_up.slice(1, 0, F), update("layers.1.gate"), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(gate_up.slice(1, F, 2 * F), update("layers.1.up"), 1e-5, 1e-5));
}

// Gemma 3's multimodal checkpoints hold the text layers under
// model.language_model (Gemma3ForConditionalGeneration).
TEST(PeftExport, Gemma3MultimodalNamesItsLanguageModelLayers) {
  EXPECT_EQ(hf_module_path("gemma3_multimodal", "layers.3.q"),
            "model.language_model.layers.3.self_attn.q_proj");
  EXPECT_EQ(hf_module_path("gemma3_multimodal", "layers.0.down"),
            "model.language_model.layers.0.mlp.down_proj");
  EXPECT_EQ(hf_module_path("llama", "layers.0.down"), "model.layers.0.mlp.down_proj");
  EXPECT_EQ(hf_module_path("phi3", "layers.2.qkv"), "model.layers.2.self_attn.qkv_proj");
}

}  // namespace
}  // namespace sparc
