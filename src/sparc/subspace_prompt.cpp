#include "sparc/subspace_prompt.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace sparc {

TaskRecord SubspacePromptMethod::initial_record(const MethodContext& ctx, std::size_t task,
                                                const std::string& name, const Subspace& s,
                                                bool log) const {
  TaskRecord e = Method::initial_record(ctx, task, name, s, log);
  const auto& library = ctx.library;
  int best = -1;
  double best_score = -1;
  for (size_t j = 0; j < library.size(); ++j) {
    double score = subspace_similarity(s.basis, library[j].subspace.basis);
    e.similarities.push_back(score);
    if (score > best_score) best_score = score, best = int(j);
  }
  const double threshold = ctx.cfg.reuse_threshold;
  torch::Tensor z;
  if (best >= 0 && best_score >= threshold) {  // SPEC 1.3: reuse
    z = reuse_init(library[best].prompt.to(torch::kFloat64), s);
    e.reused_from = best;
    if (log)
      spdlog::info("task '{}': reuse the prompt of '{}' (similarity {:.3f} >= {:.3f})", e.name,
                   library[best].name, best_score, threshold);
  } else {  // SPEC 1.4: sampled, then orthogonal to every stored prompt
    z = project(ctx.sampled_embeddings(task), s);
    std::vector<StoredPrompt> stored;
    for (const auto& j : library) stored.push_back({j.z.to(torch::kFloat64), &j.subspace});
    auto orth = orthogonal_init(z, s, stored);
    z = orth.z;
    e.orth_directions = orth.directions;
    e.orth_capped = orth.capped;
    e.orth_residual = orth.residual_overlap;
    if (log) {
      spdlog::info("task '{}': orthogonal initialisation (best similarity {:.3f} < {:.3f}; "
                   "{} stored directions removed{})",
                   e.name, std::max(0.0, best_score), threshold, orth.directions,
                   orth.capped ? fmt::format(", capacity cap binds: residual overlap {:.3g}",
                                             orth.residual_overlap)
                               : "");
    }
  }
  e.z = z.to(torch::kFloat32);
  e.z_init = e.z.clone();
  e.prompt = prompt_embeddings(e.z, s).to(torch::kFloat32);
  return e;
}

Trainables SubspacePromptMethod::begin_task(TaskRecord& r, LoraSet&, Transformer&) const {
  Trainables t;
  r.z = r.z.detach().clone().requires_grad_(true);
  t.prompt_group.push_back(r.z);
  t.names.push_back("z");
  t.adapters = &r.lora;
  return t;
}

torch::Tensor SubspacePromptMethod::prefix(const TaskRecord& r) const {
  return prompt_embeddings(r.z, r.subspace);
}

std::function<torch::Tensor(const TaskRecord&)> SubspacePromptMethod::penalty(
    const std::vector<TaskRecord>& library, double lambda) const {
  if (lambda <= 0 || library.empty()) return {};
  // The function owns what it reads: the library may change or go after it is made.
  auto subspaces = std::make_shared<std::vector<Subspace>>();
  for (const auto& j : library) subspaces->push_back(j.subspace);
  std::vector<StoredPrompt> stored;
  for (size_t j = 0; j < library.size(); ++j)
    stored.push_back({library[j].z.to(torch::kFloat64), &(*subspaces)[j]});
  return [subspaces, stored, lambda](const TaskRecord& r) {
    return lambda * orthogonality_penalty(r.z, r.subspace, stored).to(torch::kFloat32);
  };
}

void SubspacePromptMethod::end_task(TaskRecord& r, LoraSet&, Transformer&) const {
  r.z = r.z.detach();
  r.prompt = prompt_embeddings(r.z, r.subspace).detach().to(torch::kFloat32);
}

std::int64_t SubspacePromptMethod::trainable_per_task(const RunConfig& cfg, Transformer&) const {
  return std::int64_t(cfg.prompt.length) * cfg.pca.k;
}

std::unique_ptr<Method> make_subspace_prompt_method() {
  return std::make_unique<SubspacePromptMethod>(MethodId::kSparc);
}

}  // namespace sparc
