#include "train/evaluator.h"

#include <cmath>

#include "comm/exact_sum.h"
#include "core/file.h"
#include "sparc/lora_sites.h"

namespace sparc {

torch::Tensor class_scores(RunContext& c, const std::vector<const EncodedExample*>& batch,
                           const torch::Tensor& prefix, const std::vector<std::int32_t>& labels) {
  auto& model = *c.model;
  const std::int64_t B = std::int64_t(batch.size());
  std::int64_t T = 0;
  for (const auto* e : batch) T = std::max<std::int64_t>(T, std::int64_t(e->ids.size()));
  auto tokens = torch::zeros({B, T}, torch::kLong);
  auto valid = torch::zeros({B, T}, torch::kBool);
  std::vector<std::int64_t> last(B);
  auto tok_a = tokens.accessor<std::int64_t, 2>();
  auto val_a = valid.accessor<bool, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& ids = batch[b]->ids;
    for (size_t i = 0; i < ids.size(); ++i) tok_a[b][i] = ids[i], val_a[b][i] = true;
    last[b] = std::int64_t(ids.size()) - 1;
  }
  const std::int64_t P = prefix.defined() ? prefix.size(0) : 0;
  auto pos = torch::tensor(last, torch::kLong).add_(P).to(model.device());
  auto h_last = model.prefixed_hidden_at(tokens, prefix, valid, pos);  // [B, D]
  auto label_ids = torch::tensor(std::vector<std::int64_t>(labels.begin(), labels.end()),
                                 torch::kLong).to(model.device());
  auto w = model.output_rows(label_ids);  // [C, D]; sharded, an exchange of those rows
  return model.cap_logits(torch::matmul(h_last, w.t()).to(torch::kFloat32));  // Gemma 2 soft-caps
}

std::int64_t count_correct(RunContext& c, const std::vector<const EncodedExample*>& all,
                           const torch::Tensor& prefix, const std::vector<std::int32_t>& labels) {
  torch::NoGradGuard no_grad;
  // Fixed evaluation units (SPEC 3): eval.batch_size examples in the set's
  // order, dealt round robin, so every example is scored in the same batch,
  // with the same padding, whatever the world size.
  const auto bs = std::int64_t(c.cfg.eval.batch_size), n = std::int64_t(all.size());
  const std::int64_t units = (n + bs - 1) / bs;
  std::int64_t mine = 0;
  for (std::int64_t u = c.rank(); u < units; u += c.world()) ++mine;
  const std::int64_t most = c.most_passes(mine);
  std::int64_t correct = 0;
  for (std::int64_t u = c.rank(); u < units; u += c.world()) {
    std::vector<const EncodedExample*> batch(all.begin() + u * bs, all.begin() + std::min(n, (u + 1) * bs));
    auto pred = class_scores(c, batch, prefix, labels).argmax(1).cpu();
    auto pa = pred.accessor<std::int64_t, 1>();
    for (size_t b = 0; b < batch.size(); ++b) correct += pa[std::int64_t(b)] == batch[b]->label;
  }
  c.idle_passes(mine, most, c.model->config().n_layers, Transformer::OutputUse::kRows);
  auto t = torch::tensor({correct}, torch::kInt64);
  c.ranks.sum(t, CommTag::kEval);
  return t.item<std::int64_t>();
}

std::vector<const EncodedExample*> pointers(const std::vector<EncodedExample>& xs) {
  std::vector<const EncodedExample*> out;
  for (const auto& x : xs) out.push_back(&x);
  return out;
}

double accuracy_with(RunContext& c, std::size_t j, const TaskRecord* record) {
  if (record) install_lora(*c.model, record->lora);
  auto n = count_correct(c, pointers(c.data[j].test), record ? record->prompt : torch::Tensor(),
                         c.data[j].label_tokens);
  if (record) install_lora(*c.model, c.shared_lora);
  return double(n) / double(c.data[j].test.size());
}

namespace {

int route_example(RunContext& c, const EncodedExample& e) {
  std::vector<const Subspace*> candidates;
  for (const auto& r : c.library) candidates.push_back(&r.subspace);
  return route(pca_features(c, e).cpu(), candidates);
}

// Domain-incremental (SPEC 1.7): each test example goes to the stored task
// whose subspace reconstructs it best. Returns accuracy; counts routing hits.
// Routes are computed by the rank that holds the example and shared, so
// every rank knows the groups and scores them in the same fixed units.
double routed_accuracy(RunContext& c, std::size_t j, std::int64_t* routed_right) {
  const auto& test = c.data[j].test;
  std::int64_t passes = 0;
  for (size_t i = 0; i < test.size(); ++i)
    passes += c.mine(std::int64_t(i)) && features_make_pass(c, test[i]);
  const std::int64_t most = c.most_passes(passes);
  auto routes = torch::zeros({std::int64_t(test.size())}, torch::kInt64);  // route + 1; 0 elsewhere
  for (size_t i = 0; i < test.size(); ++i)
    if (c.mine(std::int64_t(i))) routes[std::int64_t(i)] = route_example(c, test[i]) + 1;
  c.idle_passes(passes, most, features_layers(c), Transformer::OutputUse::kNone);
  c.ranks.sum(routes, CommTag::kEval);
  std::vector<std::vector<const EncodedExample*>> groups(c.library.size());
  std::int64_t right = 0;
  auto ra = routes.accessor<std::int64_t, 1>();
  for (size_t i = 0; i < test.size(); ++i) {
    const auto r = size_t(ra[std::int64_t(i)] - 1);
    groups[r].push_back(&test[i]);
    right += r == j;
  }
  std::int64_t correct = 0;
  for (size_t r = 0; r < groups.size(); ++r) {
    if (groups[r].empty()) continue;  // empty on every rank alike
    install_lora(*c.model, c.library[r].lora);
    correct += count_correct(c, groups[r], c.library[r].prompt, c.data[j].label_tokens);
  }
  install_lora(*c.model, c.shared_lora);
  if (routed_right) *routed_right += right;
  return double(correct) / double(test.size());
}

}  // namespace

bool routes_examples(const RunContext& c) {
  return c.cfg.setting == "domain-incremental" && c.method->per_task();
}

std::vector<double> evaluate_row(RunContext& c, std::size_t i, std::int64_t* routed_right) {
  std::vector<double> row;
  const bool per_task = c.method->per_task();
  const bool domain = routes_examples(c);
  for (size_t j = 0; j < c.data.size(); ++j) {
    if (domain) {
      row.push_back(routed_accuracy(c, j, i + 1 == c.data.size() ? routed_right : nullptr));
    } else if (!per_task) {
      row.push_back(accuracy_with(c, j, nullptr));  // shared state only: the current one
    } else if (j <= i) {
      row.push_back(accuracy_with(c, j, &c.library[j]));
    } else {
      // What task j would start from now (SPEC 2's forward transfer).
      TaskRecord start = c.method->initial_record(c.method_context(), j, c.data[j].name,
                                                  c.subspaces[j], false);
      row.push_back(accuracy_with(c, j, &start));
    }
  }
  return row;
}

double perplexity(RunContext& c) {
  const auto& cfg = c.cfg;
  std::vector<std::vector<std::int32_t>> texts;
  if (!cfg.eval.ppl_text.empty()) {
    std::string all = read_text_file(cfg.eval.ppl_text);
    size_t start = 0;
    while (start < all.size()) {
      size_t end = all.find('\n', start);
      if (end == std::string::npos) end = all.size();
      if (end > start) {
        auto ids = c.tok->encode_with_bos(all.substr(start, end - start));
        if (ids.size() > size_t(cfg.train.max_length)) ids.resize(cfg.train.max_length);
        texts.push_back(ids);
      }
      start = end + 1;
    }
  } else {
    for (const auto& d : c.data)
      for (const auto& e : d.test) texts.push_back(e.ids);
  }
  torch::NoGradGuard no_grad;
  // One text per unit; the texts' log-likelihoods are added in text order
  // (comm/exact_sum.h's slots), so the sum does not depend on the world size.
  auto slots = torch::zeros({std::int64_t(texts.size())}, torch::kFloat64);
  std::int64_t count = 0, passes = 0;
  for (size_t i = 0; i < texts.size(); ++i) passes += texts[i].size() >= 2 && c.mine(std::int64_t(i));
  const std::int64_t most = c.most_passes(passes);
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto& ids = texts[i];
    if (ids.size() < 2 || !c.mine(std::int64_t(i))) continue;
    auto t = torch::tensor(std::vector<std::int64_t>(ids.begin(), ids.end()), torch::kLong).unsqueeze(0);
    // log p of each next token under the softmax over the whole vocabulary,
    // slice by slice (Transformer::token_log_likelihoods), sharded or not.
    auto hidden = c.model->prefixed_hidden_states(t, {}, {}).squeeze(0).slice(0, 0, -1);
    auto target = t.squeeze(0).slice(0, 1);
    slots[std::int64_t(i)] = -c.model->token_log_likelihoods(hidden, target).sum().item<double>();
    count += target.size(0);
  }
  c.idle_passes(passes, most, c.model->config().n_layers, Transformer::OutputUse::kLogits);
  const double nll = sum_in_unit_order(c.world() > 1 ? c.ranks.comm : nullptr, slots, CommTag::kEval);
  auto counts = torch::tensor({count}, torch::kInt64);
  c.ranks.sum(counts, CommTag::kEval);
  count = counts.item<std::int64_t>();
  return count ? std::exp(nll / double(count)) : -1;
}

}  // namespace sparc
