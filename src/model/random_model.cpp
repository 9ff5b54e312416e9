#include "model/random_model.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/safetensors.h"
#include "model/weight_source.h"

namespace sparc {
namespace {

// Hugging Face llama names of the canonical tensors (as write_hf_llama_directory
// writes them; the byte-identity test holds the two together).
std::string hf_llama_name(const std::string& canon) {
  static const std::pair<const char*, const char*> parts[] = {
      {".attn_norm.", ".input_layernorm."}, {".mlp_norm.", ".post_attention_layernorm."},
      {".q.", ".self_attn.q_proj."},        {".k.", ".self_attn.k_proj."},
      {".v.", ".self_attn.v_proj."},        {".o.", ".self_attn.o_proj."},
      {".gate.", ".mlp.gate_proj."},        {".up.", ".mlp.up_proj."},
      {".down.", ".mlp.down_proj."}};
  if (canon == "tok_embeddings") return "model.embed_tokens.weight";
  if (canon == "norm.weight") return "model.norm.weight";
  if (canon == "lm_head.weight") return canon;
  for (const auto& [from, to] : parts) {
    auto at = canon.find(from);
    if (at != std::string::npos)
      return "model." + canon.substr(0, at) + to + canon.substr(at + std::strlen(from));
  }
  return canon;
}

}  // namespace

void write_random_llama_directory(const ModelConfig& c, std::uint64_t seed,
                                  const std::string& dir, const std::string& dtype) {
  c.validate("random-model");
  if (c.arch != Arch::kLlama) throw InputError(dir, "only llama models can be written");
  if (dtype != "f32" && dtype != "bf16" && dtype != "f16")
    throw InputError("dtype", "expected f32, bf16 or f16, got '" + dtype + "'");
  const torch::Dtype td = dtype == "bf16"  ? torch::kBFloat16
                          : dtype == "f16" ? torch::kFloat16
                                           : torch::kFloat32;
  const DType sd = dtype == "bf16" ? DType::BF16 : dtype == "f16" ? DType::F16 : DType::F32;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw InputError(dir, errno_text("cannot create directory"));

  const auto tensors = expected_tensors(c);
  std::vector<SafetensorsStreamWriter::Spec> specs;
  for (const auto& [name, shape] : tensors) specs.push_back({hf_llama_name(name), sd, shape});
  SafetensorsStreamWriter writer(dir + "/model.safetensors", std::move(specs), {{"format", "pt"}});
  auto gen = at::detail::createCPUGenerator(seed);
  for (const auto& [name, shape] : tensors) {
    // The draw in f32, then the stored dtype: about 1.5x the largest tensor
    // (the embedding) is this command's peak.
    auto t = random_weight(name, shape, gen).to(td).contiguous();
    writer.write_next(t.data_ptr(), size_t(t.numel() * t.element_size()));
  }
  writer.finish();

  nlohmann::json cfg = {{"architectures", {c.qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
                        {"model_type", c.qkv_bias ? "qwen2" : "llama"},
                        {"hidden_size", c.dim},
                        {"intermediate_size", c.ffn_dim},
                        {"num_hidden_layers", c.n_layers},
                        {"num_attention_heads", c.n_heads},
                        {"num_key_value_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"hidden_act", "silu"},
                        {"rms_norm_eps", c.norm_eps},
                        {"rope_theta", c.rope_theta},
                        {"vocab_size", c.vocab_size},
                        {"max_position_embeddings", c.max_seq_len},
                        {"tie_word_embeddings", c.tie_embeddings},
                        {"torch_dtype", dtype == "bf16"  ? "bfloat16"
                                        : dtype == "f16" ? "float16"
                                                         : "float32"}};
  std::ofstream out(dir + "/config.json");
  out << cfg.dump(2) << "\n";
  if (!out) throw InputError(dir + "/config.json", "write failed");
}

}  // namespace sparc
