// Transformer's weights: loading and checking them from a WeightSource
// (whole, or this rank's shards of the blocks), and listing them by name.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"
#include "core/error.h"
#include "core/random.h"
#include "model/block_shards.h"
#include "model/transformer.h"
#include "model/vocab_shards.h"

namespace sparc {
namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

Transformer::Transformer(const WeightSource& source, const ModelOptions& options)
    : config_(source.config()), options_(options) {
  config_.validate(source.describe());
  torch::NoGradGuard no_grad;
  const bool shard = options_.shard_comm != nullptr && options_.shard_comm->size() > 1;
  if (shard)
    shards_ = std::make_shared<BlockShards>(*options_.shard_comm, options_.dtype, options_.device);
  std::map<std::string, torch::Tensor> loaded;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> block;  // one block's, sharded
  std::int64_t block_layer = -1;
  for (const auto& [name, shape] : expected_tensors(config_)) {
    const std::string stored = source.stored_name(name);
    if (!source.has(name))
      throw InputError(source.describe(), "missing tensor '" + stored + "' (expected shape " +
                                              shape_str(shape) + ")");
    const auto meta = source.meta(name);
    if (c10::IntArrayRef(meta.shape) != c10::IntArrayRef(shape))
      throw InputError(source.describe(), "tensor '" + stored + "' has shape " +
                                              shape_str(meta.shape) + ", expected " +
                                              shape_str(shape));
    if (!meta.floating)
      throw InputError(source.describe(), "tensor '" + stored + "' is not floating point");
    std::int64_t numel = 1;
    for (auto d : shape) numel *= d;
    parameter_count_ += numel;
    // Norms other than the two every block has ([hd] or [D], small) stay
    // whole on every rank: a gathered block keeps them.
    const bool whole = name.find(".q_norm.") != std::string::npos ||
                       name.find(".k_norm.") != std::string::npos ||
                       name.find(".post_attn_norm.") != std::string::npos ||
                       name.find(".post_mlp_norm.") != std::string::npos;
    if (shard && !whole && name.rfind("layers.", 0) == 0) {
      const std::int64_t layer = std::stoll(name.substr(7));
      if (layer != block_layer && !block.empty()) shards_->add_block(source, block), block.clear();
      block_layer = layer;
      block.emplace_back(name, shape);
      continue;
    }
    if (shard && (name == "tok_embeddings" || name == "lm_head.weight")) continue;  // by slices, below
    loaded[name] = source.load(name).to(options_.device, options_.dtype).contiguous();
  }
  if (!block.empty()) shards_->add_block(source, block);
  auto take = [&](const std::string& n) -> torch::Tensor {
    auto it = loaded.find(n);
    return it == loaded.end() ? torch::Tensor() : it->second;
  };
  tok_embeddings_ = take("tok_embeddings");
  pos_embeddings_ = take("pos_embeddings");
  lm_head_ = config_.tie_embeddings ? tok_embeddings_ : take("lm_head.weight");
  const std::int64_t G = options_.vocab_slice_rows;
  // Sharded: the embedding's and the output layer's slices in one store.
  auto vocab_store = shard ? std::make_shared<BlockShards>(*options_.shard_comm, options_.dtype,
                                                          options_.device)
                           : nullptr;
  auto table = [&](const std::string& n, const torch::Tensor& whole) {
    if (!shard) return std::make_shared<VocabTable>(whole, G);
    return std::make_shared<VocabTable>(source, n, config_.vocab_size, config_.dim, G, vocab_store,
                                        *options_.shard_comm);
  };
  embed_table_ = table("tok_embeddings", tok_embeddings_);
  output_table_ = config_.tie_embeddings ? embed_table_ : table("lm_head.weight", lm_head_);
  final_norm_ = {take("norm.weight"), take("norm.bias")};
  const std::int64_t D = config_.dim, F = config_.ffn_dim;
  const std::int64_t Q = config_.q_dim(), KV = config_.kv_dim();
  for (std::int64_t l = 0; l < config_.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    auto lin = [&](const std::string& n, std::int64_t out_features, std::int64_t in_features) {
      Linear out;
      out.weight = take(p + n + ".weight");
      out.bias = take(p + n + ".bias");
      out.in_features = in_features;
      out.out_features = out_features;
      out.module_id = random_key({std::uint64_t(l), std::hash<std::string>{}(n)});
      return out;
    };
    Block b;
    b.attn_norm = {take(p + "attn_norm.weight"), take(p + "attn_norm.bias")};
    b.mlp_norm = {take(p + "mlp_norm.weight"), take(p + "mlp_norm.bias")};
    b.q_norm = {take(p + "q_norm.weight"), {}};
    b.k_norm = {take(p + "k_norm.weight"), {}};
    b.post_attn_norm = {take(p + "post_attn_norm.weight"), {}};
    b.post_mlp_norm = {take(p + "post_mlp_norm.weight"), {}};
    b.sliding = config_.layer_slides(l);
    b.q = lin("q", Q, D);
    b.k = lin("k", KV, D);
    b.v = lin("v", KV, D);
    b.o = lin("o", D, Q);
    b.gate = lin("gate", F, D);
    b.up = lin("up", F, D);
    b.down = lin("down", D, F);
    blocks_.push_back(std::move(b));
  }
}

std::vector<std::pair<std::string, torch::Tensor>> Transformer::named_weights() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  auto add = [&](const std::string& n, const torch::Tensor& t) {
    if (t.defined()) out.emplace_back(n, t);
  };
  add("tok_embeddings", tok_embeddings_);
  add("pos_embeddings", pos_embeddings_);
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const auto& b = blocks_[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", b.attn_norm.weight);
    add(p + "attn_norm.bias", b.attn_norm.bias);
    add(p + "q_norm.weight", b.q_norm.weight);
    add(p + "k_norm.weight", b.k_norm.weight);
    const std::pair<const char*, const Linear*> lins[] = {
        {"q", &b.q}, {"k", &b.k}, {"v", &b.v}, {"o", &b.o},
        {"gate", &b.gate}, {"up", &b.up}, {"down", &b.down}};
    for (const auto& [n, lin] : lins) {
      add(p + n + ".weight", lin->weight);
      add(p + n + ".bias", lin->bias);
    }
    add(p + "mlp_norm.weight", b.mlp_norm.weight);
    add(p + "mlp_norm.bias", b.mlp_norm.bias);
    add(p + "post_attn_norm.weight", b.post_attn_norm.weight);
    add(p + "post_mlp_norm.weight", b.post_mlp_norm.weight);
  }
  add("norm.weight", final_norm_.weight);
  add("norm.bias", final_norm_.bias);
  if (!config_.tie_embeddings) add("lm_head.weight", lm_head_);
  return out;
}

void Transformer::set_weights_trainable(bool trainable) {
  for (auto& [name, t] : named_weights()) {
    auto tensor = t;  // shares storage and autograd meta with the member
    tensor.requires_grad_(trainable);
  }
}

std::int64_t Transformer::parameter_count() const { return parameter_count_; }

}  // namespace sparc
