// Layer sharding (SPEC 3): a block's weights gathered right before it runs,
// and its backward as an autograd node that gathers and recomputes the block.
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "model/block_shards.h"
#include "model/transformer.h"

namespace sparc {

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

// Backward of one sharded block: gathers the block again (issuing the gather
// of the block below, which backward reaches next), recomputes it from the
// saved input with the same dropout draws, and returns the gradients of the
// input and of the block's trainable adapters. Only the input is saved.
struct ShardedBlockBackward : public torch::autograd::Node {
  const Transformer* model = nullptr;
  std::int64_t layer = 0;
  Transformer::Geometry geometry;
  bool has_dropout = false;
  DropoutKeys dropout;
  torch::Tensor input;  // detached
  bool input_requires_grad = false;
  std::vector<torch::Tensor> params;  // the block's trainable adapter tensors

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    Block b = model->full_block(layer, layer - 1);
    torch::autograd::variable_list out(1 + params.size());
    if (!grads[0].defined()) return out;
    torch::AutoGradMode enable(true);
    auto x = input.detach().requires_grad_(input_requires_grad);
    auto y = model->run_block(b, x, geometry, has_dropout ? &dropout : nullptr);
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
    geometry = {};
  }
};

torch::Tensor Transformer::call_block(std::int64_t l, std::int64_t next, const torch::Tensor& x,
                                      const Geometry& g) const {
  if (!shards_) return run_block(blocks_[size_t(l)], x, g, dropout_);
  std::vector<torch::Tensor> params;
  const Block& meta = blocks_[size_t(l)];
  for (const Linear* lin : {&meta.q, &meta.k, &meta.v, &meta.o, &meta.gate, &meta.up, &meta.down})
    if (lin->lora)
      for (const auto& t : {lin->lora->a, lin->lora->b})
        if (t.requires_grad()) params.push_back(t);
  const bool graph = torch::GradMode::is_enabled() && (x.requires_grad() || !params.empty());
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;  // the graph of a sharded block is its recomputing node
    y = run_block(full_block(l, next), x, g, dropout_);
  }
  if (!graph) return y;
  auto node = std::shared_ptr<ShardedBlockBackward>(new ShardedBlockBackward(),
                                                    torch::autograd::deleteNode);
  node->model = this;
  node->layer = l;
  node->geometry = g;
  node->has_dropout = dropout_ != nullptr;
  if (dropout_) node->dropout = *dropout_;
  node->input = x.detach();
  node->input_requires_grad = x.requires_grad();
  node->params = params;
  std::vector<torch::Tensor> inputs{x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  node->set_next_edges(torch::autograd::collect_next_edges(inputs));
  torch::autograd::create_gradient_edge(y, node);
  return y;
}

void Transformer::idle_pass(std::int64_t layers, bool backward) const {
  if (!shards_) return;
  for (std::int64_t l = 0; l < layers; ++l) shards_->gather(l, l + 1 < layers ? l + 1 : -1);
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

}  // namespace sparc
