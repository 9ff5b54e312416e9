#include "model/generator.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/random.h"

namespace sparc {

std::int32_t pick_token(const std::vector<float>& logits, double temperature, double uniform) {
  const auto best = std::max_element(logits.begin(), logits.end());
  if (temperature <= 0.0) return static_cast<std::int32_t>(best - logits.begin());
  std::vector<double> p(logits.size());
  double total = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    p[i] = std::exp((double(logits[i]) - double(*best)) / temperature);
    total += p[i];
  }
  double target = uniform * total, acc = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    acc += p[i];
    if (target < acc) return static_cast<std::int32_t>(i);
  }
  return static_cast<std::int32_t>(p.size() - 1);
}

std::vector<std::int32_t> generate(const Transformer& model, const std::vector<std::int32_t>& prompt,
                                   const GenerateOptions& options,
                                   const std::function<void(std::int32_t)>& on_token) {
  if (prompt.empty()) throw InputError("prompt", "generation needs at least one token");
  torch::InferenceMode inference;
  std::vector<std::int64_t> seq(prompt.begin(), prompt.end());
  std::vector<std::int32_t> out;
  const std::int64_t limit = model.config().max_seq_len;
  constexpr std::uint64_t kGenerateStream = 0x67656e;  // "gen"
  for (int step = 0; step < options.max_new_tokens && std::int64_t(seq.size()) < limit; ++step) {
    auto tokens = torch::tensor(seq, torch::kLong).unsqueeze(0);
    auto last = model.forward(tokens).select(1, -1).squeeze(0).contiguous().cpu();
    std::vector<float> row(last.data_ptr<float>(), last.data_ptr<float>() + last.numel());
    double u = uniform01(random_key({options.seed, kGenerateStream, std::uint64_t(step)}));
    std::int32_t next = pick_token(row, options.temperature, u);
    if (options.eos_id && next == *options.eos_id) break;
    out.push_back(next);
    seq.push_back(next);
    if (on_token) on_token(next);
  }
  return out;
}

}  // namespace sparc
