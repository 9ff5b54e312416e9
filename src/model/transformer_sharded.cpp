// Layer sharding (SPEC 3): a block's weights gathered right before it runs,
// and its backward as an autograd node that gathers and recomputes the block;
// which blocks recompute (`model.recompute`), sharded or not.
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/block_shards.h"
#include "model/transformer.h"
#include "model/vocab_shards.h"

namespace sparc {

ModelOptions::Recompute parse_recompute(const std::string& name, const std::string& where) {
  if (name == "auto") return ModelOptions::Recompute::kAuto;
  if (name == "always") return ModelOptions::Recompute::kAlways;
  if (name == "never") return ModelOptions::Recompute::kNever;
  throw InputError(where, "unknown recompute mode '" + name + "', expected auto, always or never");
}

Block Transformer::full_block(std::int64_t l, std::int64_t next) const {
  Block b = blocks_[size_t(l)];
  if (!shards_) return b;
  auto w = shards_->gather(l, next);
  const std::string p = "layers." + std::to_string(l) + ".";
  auto get = [&](const std::string& n) {
    auto it = w.find(p + n);
    return it == w.end() ? torch::Tensor() : it->second;
  };
  b.attn_norm = {get("attn_norm.weight"), get("attn_norm.bias")};
  b.mlp_norm = {get("mlp_norm.weight"), get("mlp_norm.bias")};
  const std::pair<const char*, Linear*> lins[] = {{"q", &b.q},       {"k", &b.k},   {"v", &b.v},
                                                  {"o", &b.o},       {"gate", &b.gate},
                                                  {"up", &b.up},     {"down", &b.down}};
  for (const auto& [n, lin] : lins) {
    lin->weight = get(std::string(n) + ".weight");
    lin->bias = get(std::string(n) + ".bias");
  }
  return b;
}

// Backward of one recomputed block: gathers the block again when sharded
// (issuing the gather of the block below, which backward reaches next),
// recomputes it from the saved input with the same dropout draws, and
// returns the gradients of the input and of the block's trainable adapters.
// Only the input is saved. `kept`: the block kept its own graph (below this
// node); the node only joins the backward gathers, so every rank, computing
// or idle (idle_pass), makes the same sequence of them, and passes the
// gradient through.
struct ShardedBlockBackward : public torch::autograd::Node {
  const Transformer* model = nullptr;
  std::int64_t layer = 0;
  Transformer::Geometry geometry;
  bool has_dropout = false;
  DropoutKeys dropout;
  torch::Tensor input;  // detached
  bool input_requires_grad = false;
  std::vector<torch::Tensor> params;  // the block's trainable adapter tensors
  bool kept = false;
  torch::Tensor rows;  // defined: the pruned last block, per sequence at `rows`

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    Block b = model->full_block(layer, layer - 1);
    if (kept) return {grads[0]};
    torch::autograd::variable_list out(1 + params.size());
    if (!grads[0].defined()) return out;
    torch::AutoGradMode enable(true);
    auto x = input.detach().requires_grad_(input_requires_grad);
    auto y = rows.defined() ? model->run_block_per_sequence(b, x, geometry, rows)
                            : model->run_block(b, x, geometry, has_dropout ? &dropout : nullptr);
    std::vector<torch::Tensor> wrt;
    std::vector<size_t> slot;
    if (input_requires_grad) wrt.push_back(x), slot.push_back(0);
    for (size_t i = 0; i < params.size(); ++i) wrt.push_back(params[i]), slot.push_back(i + 1);
    auto g = torch::autograd::grad({y}, wrt, {grads[0]}, /*retain_graph=*/false,
                                   /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t i = 0; i < g.size(); ++i) out[slot[i]] = g[i];
    return out;
  }
  void release_variables() override {
    input.reset();
    rows.reset();
    geometry = {};
  }
};

namespace {

// The block's trainable LoRA tensors.
std::vector<torch::Tensor> trainable_adapters(const Block& b) {
  std::vector<torch::Tensor> params;
  for (const Linear* lin : {&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down})
    if (lin->lora)
      for (const auto& t : {lin->lora->a, lin->lora->b})
        if (t.requires_grad()) params.push_back(t);
  return params;
}

}  // namespace

bool Transformer::keeps_block(std::int64_t l, const torch::Tensor& x) const {
  if (l == 0) kept_bytes_ = 0;  // a pass starts at block 0
  // Trainable weights (`full`): the recomputing node returns no weight gradients.
  if (blocks_[size_t(l)].q.weight.defined() && blocks_[size_t(l)].q.weight.requires_grad())
    return true;
  switch (options_.recompute) {
    case ModelOptions::Recompute::kAlways: return false;
    case ModelOptions::Recompute::kNever: return true;
    case ModelOptions::Recompute::kAuto: break;
  }
  if (options_.activation_budget_bytes <= 0) return !shards_;
  // An estimate of what autograd keeps for a llama block: per token the
  // norms' inputs and outputs, q, k, v before and after RoPE, the attention
  // output, and the MLP's four [F] products; per head the scores and
  // probabilities in f32. Sharded, the gathered weights it saves too.
  const std::int64_t B = x.size(0), S = x.size(1), es = x.element_size();
  const std::int64_t D = config_.dim, F = config_.ffn_dim, KV = config_.kv_dim();
  std::int64_t bytes = B * S * (8 * D + 3 * KV + 4 * F) * es + 2 * B * config_.n_heads * S * S * 4;
  if (shards_) bytes += shards_->block_bytes(l);
  if (kept_bytes_ + bytes > options_.activation_budget_bytes) return false;
  kept_bytes_ += bytes;
  return true;
}

torch::Tensor Transformer::call_block(std::int64_t l, std::int64_t next, const torch::Tensor& x,
                                      const Geometry& g) const {
  const Block& meta = blocks_[size_t(l)];
  const std::vector<torch::Tensor> params = trainable_adapters(meta);
  const bool graph = torch::GradMode::is_enabled() &&
                     (x.requires_grad() || !params.empty() ||
                      (meta.q.weight.defined() && meta.q.weight.requires_grad()));
  const bool keep = graph && keeps_block(l, x);
  if (!shards_ && (!graph || keep)) return run_block(meta, x, g, dropout_);
  torch::Tensor y;
  if (keep) {
    // The block's own graph (holding the gathered weights it saved), under
    // a node that joins the backward gathers.
    auto kept = run_block(full_block(l, next), x, g, dropout_);
    auto node = std::shared_ptr<ShardedBlockBackward>(new ShardedBlockBackward(),
                                                      torch::autograd::deleteNode);
    node->model = this;
    node->layer = l;
    node->kept = true;
    node->set_next_edges(torch::autograd::collect_next_edges(kept));
    y = kept.detach();
    torch::autograd::create_gradient_edge(y, node);
    return y;
  }
  {
    torch::NoGradGuard no_grad;  // the graph of a recomputed block is its recomputing node
    y = run_block(full_block(l, next), x, g, dropout_);
  }
  if (!graph) return y;
  return recomputing_node(l, g, x, params, {}, y);
}

torch::Tensor Transformer::recomputing_node(std::int64_t l, const Geometry& g, const torch::Tensor& x,
                                            const std::vector<torch::Tensor>& params,
                                            const torch::Tensor& rows, torch::Tensor y) const {
  auto node = std::shared_ptr<ShardedBlockBackward>(new ShardedBlockBackward(),
                                                    torch::autograd::deleteNode);
  node->model = this;
  node->layer = l;
  node->geometry = g;
  node->rows = rows;
  // The pruned last block draws no dropout (prefixed_hidden_at does not prune then).
  node->has_dropout = !rows.defined() && dropout_ != nullptr;
  if (node->has_dropout) node->dropout = *dropout_;
  node->input = x.detach();
  node->input_requires_grad = x.requires_grad();
  node->params = params;
  std::vector<torch::Tensor> inputs{x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  node->set_next_edges(torch::autograd::collect_next_edges(inputs));
  torch::autograd::create_gradient_edge(y, node);
  return y;
}

torch::Tensor Transformer::run_block_per_sequence(const Block& block, const torch::Tensor& x,
                                                  const Geometry& g, const torch::Tensor& rows) const {
  // One sequence at a time: the products' shapes, and so BLAS's choice of
  // kernel and its rounding, then do not depend on how many sequences a rank
  // holds. No LoRA dropout here (prefixed_hidden_at does not prune then).
  std::vector<torch::Tensor> out;
  for (std::int64_t b = 0; b < x.size(0); ++b) {
    auto one = [&](const torch::Tensor& t) { return t.defined() ? t.narrow(0, b, 1) : t; };
    const Geometry gb{one(g.cos),           one(g.sin),          one(g.q_cos),
                      one(g.q_sin),         one(g.allowed),      one(g.blocked),
                      one(g.blocked_local), one(g.cos_local),    one(g.sin_local),
                      one(g.q_cos_local),   one(g.q_sin_local)};
    out.push_back(run_block(block, x.narrow(0, b, 1), gb, dropout_, rows.narrow(0, b, 1)));
  }
  return torch::cat(out, 0);
}

torch::Tensor Transformer::call_last_block_at(const torch::Tensor& x, const Geometry& g,
                                              const torch::Tensor& rows) const {
  const std::int64_t l = std::int64_t(blocks_.size()) - 1;
  if (!shards_) return run_block_per_sequence(blocks_[size_t(l)], x, g, rows);
  // Sharded: like a recomputed block, its node re-runs the same pruned
  // products in backward (and joins the backward gathers).
  const std::vector<torch::Tensor> params = trainable_adapters(blocks_[size_t(l)]);
  const bool graph = torch::GradMode::is_enabled() && (x.requires_grad() || !params.empty());
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = run_block_per_sequence(full_block(l, -1), x, g, rows);
  }
  if (!graph) return y;
  return recomputing_node(l, g, x, params, rows, y);
}

void Transformer::idle_pass(std::int64_t layers, bool backward, OutputUse output) const {
  if (!shards_) return;
  const auto none = torch::zeros({0}, torch::kLong);
  embed_table_->lookup(none);
  for (std::int64_t l = 0; l < layers; ++l) shards_->gather(l, l + 1 < layers ? l + 1 : -1);
  if (output == OutputUse::kRows) output_table_->lookup(none);
  if (output == OutputUse::kLogits) output_table_->idle_slices();
  if (backward)
    for (std::int64_t l = layers - 1; l >= 0; --l) shards_->gather(l, l - 1);
}

std::int64_t Transformer::resident_block_bytes() const {
  if (shards_) return shards_->resident_bytes();
  std::int64_t bytes = 0;
  for (const auto& [name, t] : named_weights())
    if (name.rfind("layers.", 0) == 0) bytes += t.numel() * t.element_size();
  return bytes;
}

double Transformer::gather_wait_seconds() const {
  return shards_ ? shards_->wait_seconds() : 0.0;
}

void Transformer::progress_gather() const {
  if (shards_) shards_->progress();
}

std::pair<std::int64_t, std::int64_t> Transformer::gather_buffer_uses() const {
  return shards_ ? shards_->buffer_uses() : std::pair<std::int64_t, std::int64_t>{0, 0};
}

}  // namespace sparc
