// Every task's PCA subspace (SPEC 1.1), accumulated jointly over the ranks'
// shares of the training set (SPEC 3), and the features routing uses.
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "train/run_context.h"

namespace sparc {

bool features_run_blocks(const RunContext& c, const EncodedExample& e) {
  return c.cfg.pca.source == "hidden" && c.cfg.pca.hidden_layer > 0 && !e.input_ids.empty();
}

// Its input tokens' embeddings, their hidden states after a layer, or their mean.
torch::Tensor pca_features(RunContext& c, const EncodedExample& e) {
  torch::NoGradGuard no_grad;
  auto& model = *c.model;
  auto ids = torch::tensor(std::vector<std::int64_t>(e.input_ids.begin(), e.input_ids.end()),
                           torch::kLong);
  if (ids.numel() == 0) return torch::zeros({0, model.config().dim}, torch::kFloat64);
  auto emb = model.embed(ids.unsqueeze(0));
  torch::Tensor x;
  if (c.cfg.pca.source == "hidden")
    x = model.hidden_after(emb, {}, c.cfg.pca.hidden_layer).squeeze(0);
  else
    x = emb.squeeze(0);
  x = x.to(torch::kCPU, torch::kFloat64);
  if (c.cfg.pca.source == "mean") x = x.mean(0, true);
  return x;
}

void compute_subspaces(RunContext& c) {
  const auto& cfg = c.cfg;
  const auto D = c.model->config().dim;
  for (size_t t = 0; t < c.data.size(); ++t) {
    // pca.max_tokens cuts the training set in its global order, so the
    // vectors used do not depend on how many ranks share the work.
    const auto& train = c.data[t].train;
    std::vector<std::int64_t> take(train.size(), -1);  // vectors of each example (-1: all)
    if (cfg.pca.max_tokens > 0) {
      std::int64_t left = cfg.pca.max_tokens;
      for (size_t i = 0; i < train.size(); ++i) {
        std::int64_t n = cfg.pca.source == "mean" ? 1 : std::int64_t(train[i].input_ids.size());
        take[i] = std::min(n, left);
        left -= take[i];
      }
    }
    CovarianceAccumulator acc(D);
    std::int64_t passes = 0;
    for (size_t i = 0; i < train.size(); ++i)
      passes += c.mine(std::int64_t(i)) && take[i] != 0 && features_run_blocks(c, train[i]);
    const std::int64_t most = c.most_passes(passes);
    for (size_t i = 0; i < train.size(); ++i) {
      if (!c.mine(std::int64_t(i)) || take[i] == 0) continue;
      auto x = pca_features(c, train[i]);
      if (take[i] > 0) x = x.slice(0, 0, take[i]);
      if (x.size(0) > 0) acc.add(x);
    }
    c.idle_passes(passes, most, cfg.pca.hidden_layer);
    auto packed = acc.pack();
    c.ranks.sum(packed, CommTag::kPca);
    acc.unpack(packed);
    if (acc.count() <= cfg.pca.k)
      throw InputError(cfg.tasks[t].train, "only " + std::to_string(acc.count()) +
                                               " PCA vectors for pca.k = " +
                                               std::to_string(cfg.pca.k));
    Subspace sub = compute_subspace(acc, cfg.pca.k);
    // One solver result for every rank: rank 0's.
    auto ratio = torch::tensor({sub.explained_variance_ratio}, torch::kFloat64);
    c.ranks.from_root(sub.mu, CommTag::kPca);
    c.ranks.from_root(sub.basis, CommTag::kPca);
    c.ranks.from_root(sub.eigenvalues, CommTag::kPca);
    c.ranks.from_root(ratio, CommTag::kPca);
    sub.explained_variance_ratio = ratio.item<double>();
    c.subspaces.push_back(std::move(sub));
    spdlog::info("task '{}': PCA over {} vectors, k={} explains {:.1f}% of the variance",
                 c.data[t].name, acc.count(), cfg.pca.k,
                 100 * c.subspaces.back().explained_variance_ratio);
  }
  // The full similarity table, so users can set reuse_threshold from data.
  std::string header = "subspace similarity (reuse_threshold " +
                       std::to_string(cfg.reuse_threshold).substr(0, 4) + "):";
  spdlog::info("{}", header);
  for (size_t a = 0; a < c.data.size(); ++a) {
    std::string row;
    for (size_t b = 0; b < c.data.size(); ++b)
      row += fmt::format(" {:6.3f}", subspace_similarity(c.subspaces[a].basis, c.subspaces[b].basis));
    spdlog::info("  {:>16}{}", c.data[a].name, row);
  }
}

}  // namespace sparc
