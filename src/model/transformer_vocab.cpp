// Transformer's work over the vocabulary: the embedding lookup, output rows
// for class scores, logits and the log-likelihood of perplexity, slice by
// slice of model/vocab_shards.h (whole or sharded alike).
#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "model/transformer.h"
#include "model/transformer_internal.h"
#include "model/vocab_shards.h"

namespace sparc {

using model_detail::compute_type;

torch::Tensor Transformer::embed(const torch::Tensor& tokens) const {
  auto ids = tokens.to(options_.device, torch::kLong);
  if (ids.numel() > 0) {
    auto lo = ids.min().item<std::int64_t>();
    auto hi = ids.max().item<std::int64_t>();
    if (lo < 0 || hi >= config_.vocab_size)
      throw InputError("tokens", "token id out of range [0, " +
                                     std::to_string(config_.vocab_size) + "): found " +
                                     std::to_string(lo < 0 ? lo : hi));
  }
  // Whole: torch::embedding, whose backward serves `full` training.
  if (!embed_table_->sharded()) return torch::embedding(tok_embeddings_, ids);
  auto shape = ids.sizes().vec();
  shape.push_back(config_.dim);
  return embed_table_->lookup(ids).view(shape);
}

torch::Tensor Transformer::output_rows(const torch::Tensor& ids) const {
  return output_table_->lookup(ids.to(options_.device, torch::kLong));
}

torch::Tensor Transformer::logits(const torch::Tensor& hidden) const {
  const VocabTable& t = *output_table_;
  const std::int64_t S = t.slices();
  const auto ct = compute_type(hidden);
  std::vector<torch::Tensor> parts;
  torch::Tensor w;
  for (std::int64_t s = 0; s < S; ++s) {
    w = torch::Tensor();  // its gather buffer is free again (unless autograd saved it)
    w = t.slice(s, s + 1 < S ? s + 1 : -1);
    parts.push_back(torch::matmul(hidden, w.t()).to(ct));
  }
  return cap_logits(parts.size() == 1 ? parts[0] : torch::cat(parts, -1));
}

torch::Tensor Transformer::token_log_likelihoods(const torch::Tensor& hidden,
                                                 const torch::Tensor& targets) const {
  TORCH_CHECK(hidden.dim() == 2 && targets.dim() == 1 && targets.size(0) == hidden.size(0),
              "token_log_likelihoods: hidden [T, D] and targets [T]");
  const VocabTable& t = *output_table_;
  const std::int64_t S = t.slices(), G = t.slice_rows();
  const auto ct = compute_type(hidden);
  auto tg = targets.to(hidden.device(), torch::kLong);
  // Running max M and sum of exp(z - M) per row; a slice's (m, s) is folded
  // in as S e^(M - M') + s e^(m - M'), M' = max(M, m), in slice order.
  torch::Tensor M, sum, picked = torch::zeros({hidden.size(0)}, hidden.options().dtype(torch::kFloat64));
  torch::Tensor w;
  for (std::int64_t s = 0; s < S; ++s) {
    w = torch::Tensor();
    w = t.slice(s, s + 1 < S ? s + 1 : -1);
    if (hidden.size(0) == 0) continue;  // a sharded pass still gathers every slice
    auto z = cap_logits(torch::matmul(hidden, w.t()).to(ct)).to(torch::kFloat64);  // [T, rows]
    auto m = std::get<0>(z.max(1));
    if (s == 0) {
      M = m;
      sum = (z - m.unsqueeze(1)).exp().sum(1);
    } else {
      auto next = torch::maximum(M, m);
      sum = sum * (M - next).exp() + (z - next.unsqueeze(1)).exp().sum(1);
      M = next;
    }
    const std::int64_t row0 = s * G;
    auto at = ((tg >= row0) & (tg < row0 + z.size(1))).nonzero().reshape(-1);
    if (at.numel() > 0)
      picked.index_copy_(0, at, z.index_select(0, at).gather(1, (tg.index_select(0, at) - row0).unsqueeze(1)).squeeze(1));
  }
  return hidden.size(0) == 0 ? picked : picked - (M + sum.log());
}

std::int64_t Transformer::vocab_bytes_sent() const {
  std::int64_t bytes = embed_table_->bytes_sent();
  if (output_table_ != embed_table_) bytes += output_table_->bytes_sent();
  return bytes;
}

std::int64_t Transformer::resident_vocab_bytes() const {
  std::int64_t bytes = embed_table_->resident_bytes();
  if (output_table_ != embed_table_) bytes += output_table_->resident_bytes();
  return bytes;
}

}  // namespace sparc
