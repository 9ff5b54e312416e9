// Every task's PCA subspace (SPEC 1.1), accumulated jointly over the ranks'
// shares of the training set (SPEC 3), and the features routing uses.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "comm/exact_sum.h"
#include "core/error.h"
#include "train/run_context.h"

namespace sparc {

bool features_make_pass(const RunContext&, const EncodedExample& e) { return !e.input_ids.empty(); }

std::int64_t features_layers(const RunContext& c) {
  return c.cfg.pca.source == "hidden" ? std::max<std::int64_t>(0, c.cfg.pca.hidden_layer) : 0;
}

// Its input tokens' embeddings, their hidden states after a layer, or their mean.
torch::Tensor pca_features(RunContext& c, const EncodedExample& e) {
  torch::NoGradGuard no_grad;
  auto& model = *c.model;
  auto ids = torch::tensor(std::vector<std::int64_t>(e.input_ids.begin(), e.input_ids.end()),
                           torch::kLong);
  if (ids.numel() == 0)
    return torch::zeros({0, model.config().dim}, torch::TensorOptions(torch::kFloat64).device(model.device()));
  auto emb = model.embed(ids.unsqueeze(0));
  torch::Tensor x;
  if (c.cfg.pca.source == "hidden")
    x = model.hidden_after(emb, {}, c.cfg.pca.hidden_layer).squeeze(0);
  else
    x = emb.squeeze(0);
  x = x.to(torch::kFloat64);  // on the model's device: the sums' products run there
  if (c.cfg.pca.source == "mean") x = x.mean(0, true);
  return x;
}

namespace {

// Examples per PCA unit: a fixed number, so the units (and so the sums) do
// not depend on the world size.
constexpr std::int64_t kPcaUnit = 16;
// Features kept between the two passes below, per rank: 1 GiB; past it the
// second pass computes them again. SPARC_PCA_CACHE_BYTES overrides it
// (tests take the recomputing path with 0).
std::int64_t feature_cache_bytes() {
  const char* v = std::getenv("SPARC_PCA_CACHE_BYTES");
  return v != nullptr && *v != '\0' ? std::atoll(v) : std::int64_t(1) << 30;
}

// sum(x), sum(x x^T) and n over the training set's vectors (`take`: how many
// of each example's; -1 all), exact and order-free (SPEC 3): units of
// kPcaUnit examples are dealt round robin, each unit's f64 sums become
// fixed point with scales from one MAX of the largest |x| (a unit of m
// vectors has |sum| <= m max and |sum x x^T| <= m max^2), and the integers
// are added over the ranks.
CovarianceAccumulator accumulate_exactly(RunContext& c, const std::vector<EncodedExample>& train,
                                         const std::vector<std::int64_t>& take) {
  const auto D = c.model->config().dim;
  const std::int64_t n = std::int64_t(train.size());
  const std::int64_t units = (n + kPcaUnit - 1) / kPcaUnit;
  auto vectors = [&](std::int64_t i) -> std::int64_t {
    const std::int64_t all = c.cfg.pca.source == "mean" ? (train[size_t(i)].input_ids.empty() ? 0 : 1)
                                                        : std::int64_t(train[size_t(i)].input_ids.size());
    return take[size_t(i)] < 0 ? all : std::min(all, take[size_t(i)]);
  };
  std::int64_t unit_vectors = 1;  // the most vectors in any unit (every rank knows it)
  for (std::int64_t u = 0; u < units; ++u) {
    std::int64_t m = 0;
    for (std::int64_t i = u * kPcaUnit; i < std::min(n, (u + 1) * kPcaUnit); ++i) m += vectors(i);
    unit_vectors = std::max(unit_vectors, m);
  }
  auto mine = [&](std::int64_t i) { return (i / kPcaUnit) % c.world() == c.rank(); };
  auto features = [&](std::int64_t i) {
    auto x = pca_features(c, train[size_t(i)]);
    return take[size_t(i)] >= 0 ? x.slice(0, 0, take[size_t(i)]) : x;
  };
  std::int64_t passes = 0;
  for (std::int64_t i = 0; i < n; ++i)
    passes += mine(i) && take[size_t(i)] != 0 && features_make_pass(c, train[size_t(i)]);

  // Pass 1: the largest |x|. Its features are kept for pass 2 when every
  // rank's share fits the budget (decided alike on every rank from the
  // examples' sizes: a rank that recomputes runs collectives when sharded).
  std::vector<std::int64_t> share_bytes(size_t(c.world()), 0);
  for (std::int64_t i = 0; i < n; ++i) share_bytes[size_t((i / kPcaUnit) % c.world())] += vectors(i) * D * 8;
  const bool keep = *std::max_element(share_bytes.begin(), share_bytes.end()) <= feature_cache_bytes();
  std::map<std::int64_t, torch::Tensor> kept;
  double largest = 0;
  std::int64_t most = c.most_passes(passes);
  for (std::int64_t i = 0; i < n; ++i) {
    if (!mine(i) || take[size_t(i)] == 0) continue;
    auto x = features(i);
    if (x.numel() > 0) largest = std::max(largest, x.abs().max().item<double>());
    if (x.numel() > 0 && !std::isfinite(x.sum().item<double>())) largest = INFINITY;
    if (keep) kept[i] = x;
  }
  c.idle_passes(passes, most, features_layers(c), Transformer::OutputUse::kNone);
  auto m = torch::tensor({largest}, torch::kFloat64);
  c.ranks.max(m, CommTag::kPca);
  largest = m.item<double>();
  if (!std::isfinite(largest))
    throw InputError(c.cfg.source_path, "a PCA feature of the training set is not finite (NaN "
                                         "or Inf in the model's outputs: check model.dtype and "
                                         "the weights)");

  // Pass 2: each unit's sums, converted as they are made.
  const double mv = double(unit_vectors);
  ExactSum sum({D, D * D, 1}, units, {mv * largest, mv * largest * largest, mv});
  if (!keep) most = c.most_passes(passes);
  for (std::int64_t u = c.rank(); u < units; u += c.world()) {
    CovarianceAccumulator unit(D);
    for (std::int64_t i = u * kPcaUnit; i < std::min(n, (u + 1) * kPcaUnit); ++i) {
      if (take[size_t(i)] == 0) continue;
      auto x = keep ? kept[i] : features(i);
      if (x.size(0) > 0) unit.add(x);
    }
    sum.add(unit.pack());
  }
  if (!keep) c.idle_passes(passes, most, features_layers(c), Transformer::OutputUse::kNone);
  auto packed = sum.reduce(c.ranks.comm, CommTag::kPca);
  CovarianceAccumulator acc(D);
  acc.unpack(packed);
  return acc;
}

}  // namespace

void compute_subspaces(RunContext& c) {
  const auto& cfg = c.cfg;
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
    CovarianceAccumulator acc = accumulate_exactly(c, train, take);
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
