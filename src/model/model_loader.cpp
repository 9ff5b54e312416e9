#include "model/model_loader.h"

#include "core/error.h"
#include "core/file.h"
#include "formats/llama2c.h"
#include "model/hf_model.h"

namespace sparc {
namespace {

// llama2.c tensors under canonical names; q and k rows permuted from
// adjacent-pair to half-split RoPE.
class Llama2cSource : public WeightSource {
 public:
  explicit Llama2cSource(const std::string& path) : ckpt_(path) {
    const auto& h = ckpt_.header();
    config_.arch = Arch::kLlama;
    config_.vocab_size = h.vocab_size;
    config_.dim = h.dim;
    config_.n_layers = h.n_layers;
    config_.n_heads = h.n_heads;
    config_.n_kv_heads = h.n_kv_heads;
    config_.head_dim = h.head_size();
    config_.ffn_dim = h.hidden_dim;
    config_.max_seq_len = h.seq_len;
    config_.norm_eps = 1e-5;  // llama2.c's rmsnorm
    config_.rope_theta = 10000.0;
    config_.tie_embeddings = h.shared_classifier;
    names_["tok_embeddings"] = {"token_embedding_table", -1};
    names_["norm.weight"] = {"rms_final_weight", -1};
    if (!h.shared_classifier) names_["lm_head.weight"] = {"wcls", -1};
    const std::pair<const char*, const char*> per_layer[] = {
        {"attn_norm.weight", "rms_att_weight"}, {"q.weight", "wq"}, {"k.weight", "wk"},
        {"v.weight", "wv"},   {"o.weight", "wo"},   {"mlp_norm.weight", "rms_ffn_weight"},
        {"gate.weight", "w1"}, {"down.weight", "w2"}, {"up.weight", "w3"}};
    for (int l = 0; l < h.n_layers; ++l)
      for (const auto& [canon, raw] : per_layer)
        names_["layers." + std::to_string(l) + "." + canon] = {raw, l};
  }
  const ModelConfig& config() const override { return config_; }
  std::string describe() const override { return ckpt_.path(); }
  bool has(const std::string& name) const override { return names_.count(name) != 0; }
  torch::Tensor load(const std::string& name) const override {
    auto it = names_.find(name);
    if (it == names_.end()) throw InputError(describe(), "missing tensor '" + name + "'");
    const auto& [raw, layer] = it->second;
    const auto& info = ckpt_.tensor(raw, layer);
    auto t = torch::from_blob(const_cast<float*>(ckpt_.data(raw, layer)), info.shape,
                              torch::kFloat32)
                 .clone();
    if (raw == "wq" || raw == "wk") t = pair_to_half_rope_rows(t, config_.head_dim);
    return t;
  }
  Meta meta(const std::string& name) const override {
    auto it = names_.find(name);
    if (it == names_.end()) throw InputError(describe(), "missing tensor '" + name + "'");
    return {ckpt_.tensor(it->second.first, it->second.second).shape, true};
  }

 private:
  Llama2cCheckpoint ckpt_;
  ModelConfig config_;
  std::map<std::string, std::pair<std::string, int>> names_;
};

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

std::unique_ptr<WeightSource> open_model(const std::string& path) {
  if (!file_exists(path)) throw InputError(path, "model not found");
  if (is_directory(path)) return open_hf_directory(path);
  return std::make_unique<Llama2cSource>(path);
}

std::string default_tokenizer_path(const std::string& model_path) {
  if (is_directory(model_path)) return model_path;  // tokenizer files live in the directory
  std::string candidate = parent_dir(model_path) + "/tokenizer.bin";
  return file_exists(candidate) ? candidate : std::string();
}

}  // namespace sparc
