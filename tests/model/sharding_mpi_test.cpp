// Layer sharding (SPEC 3), run by CTest under `mpirun -np 2`: a model whose
// blocks are sharded over the ranks computes the same logits and the same
// gradients (prompt and LoRA, dropout on) as the whole model held by one
// process, gathers each block once in forward and once in backward, keeps
// half of the block weights per rank, loads them as slices from a
// safetensors directory, and lets a rank without examples keep step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>

#include "comm/communicator.h"
#include "model/hf_model.h"
#include "model/model_loader.h"
#include "model/transformer.h"
#include "comm/mpi_test_main.h"
#include "test_util.h"

namespace sparc {
namespace {

Communicator* g_comm = nullptr;

ModelConfig config(Arch arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 61;
  c.dim = 24;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = arch == Arch::kLlama ? 2 : 4;  // grouped-query attention in llama
  c.head_dim = 6;
  c.ffn_dim = 40;
  c.max_seq_len = 32;
  c.qkv_bias = arch == Arch::kLlama;
  c.tie_embeddings = arch == Arch::kGpt2;
  return c;
}

std::unique_ptr<TensorMapSource> weights(const ModelConfig& c) {
  auto src = random_weights(c, 11);  // seeded: the same on every rank
  for (auto& [name, t] : src->tensors())
    if (name.find("norm") == std::string::npos) t.mul_(6.0);  // every layer matters
  return src;
}

// LoRA on q, v and down of every block, B non-zero so A gets gradients too.
std::vector<std::shared_ptr<LoraAdapter>> attach_lora(Transformer& m) {
  std::vector<std::shared_ptr<LoraAdapter>> out;
  auto gen = at::detail::createCPUGenerator(5);
  for (auto& b : m.blocks())
    for (Linear* lin : {&b.q, &b.v, &b.down}) {
      auto a = std::make_shared<LoraAdapter>();
      a->a = at::randn({3, lin->in_features}, gen).requires_grad_(true);
      a->b = at::randn({lin->out_features, 3}, gen).mul_(0.1).requires_grad_(true);
      a->scale = 2.0;
      a->dropout = 0.2;
      lin->lora = a;
      out.push_back(a);
    }
  return out;
}

struct Pass {
  torch::Tensor logits, prefix_grad;
  std::vector<torch::Tensor> lora_grads;
};

// One forward and backward with a soft prompt, left padding and LoRA dropout.
Pass run(Transformer& m, const std::vector<std::shared_ptr<LoraAdapter>>& lora) {
  auto gen = at::detail::createCPUGenerator(3);
  const auto& c = m.config();
  auto tokens = at::randint(c.vocab_size, {2, 7}, gen);
  auto mask = torch::ones({2, 7}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(0, 2)}, 0);  // row 1 is left-padded
  auto prefix = at::randn({3, c.dim}, gen).requires_grad_(true);
  auto weights = at::randn({2, 10, c.vocab_size}, gen);
  DropoutKeys keys;
  keys.base = 99;
  keys.sample_ids = {4, 17};
  m.set_dropout(&keys);
  Pass p;
  p.logits = m.forward(tokens, prefix, mask);
  (p.logits * weights).sum().backward();
  m.set_dropout(nullptr);
  p.prefix_grad = prefix.grad();
  for (const auto& a : lora) p.lora_grads.push_back(a->a.grad()), p.lora_grads.push_back(a->b.grad());
  return p;
}

// The tokens `run` draws first.
torch::Tensor run_tokens(const ModelConfig& c) {
  auto gen = at::detail::createCPUGenerator(3);
  return at::randint(c.vocab_size, {2, 7}, gen);
}

// Bytes a rank contributes to one sharded lookup on 2 ranks when both ask
// for `ids`: its count, its ids, and rows for the most distinct ids one
// rank owns (rank r owns rows [r q, (r + 1) q) of each slice of G rows, q =
// ceil(rows of the slice / 2)), 4 bytes a value.
std::int64_t lookup_bytes(const torch::Tensor& ids, const ModelConfig& c, std::int64_t G) {
  std::set<std::int64_t> distinct;
  auto flat = ids.reshape(-1).contiguous();
  for (std::int64_t i = 0; i < flat.numel(); ++i) distinct.insert(flat[i].item<std::int64_t>());
  std::int64_t owned[2] = {0, 0};
  for (auto v : distinct) {
    const std::int64_t s = v / G, rows = std::min(G, c.vocab_size - s * G), q = (rows + 1) / 2;
    ++owned[(v - s * G) / q];
  }
  return 8 + 8 * flat.numel() + std::max(owned[0], owned[1]) * c.dim * 4;
}

// |a - b| <= 1e-6 relative to the scale of b (values here are O(1) to O(100)).
void expect_close(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  const double scale = std::max(1.0, b.abs().max().item<double>());
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-6 * scale) << what;
}

class Sharded : public ::testing::TestWithParam<Arch> {};

TEST_P(Sharded, LogitsAndGradientsMatchTheWholeModel) {
  ASSERT_EQ(g_comm->size(), 2) << "run under mpirun -np 2";
  const auto c = config(GetParam());
  auto src = weights(c);
  Transformer whole(*src, {});
  ModelOptions opt;
  opt.shard_comm = g_comm;
  Transformer sharded(*src, opt);
  ASSERT_TRUE(sharded.sharded());
  ASSERT_FALSE(whole.sharded());
  EXPECT_FALSE(sharded.blocks()[0].q.weight.defined()) << "block weights must not stay whole";

  auto lw = attach_lora(whole);
  auto ls = attach_lora(sharded);
  g_comm->reset_counters();
  Pass s = run(sharded, ls);
  const auto gather = g_comm->counters(CommTag::kGather);
  Pass w = run(whole, lw);

  expect_close(s.logits, w.logits, "logits");
  expect_close(s.prefix_grad, w.prefix_grad, "prompt gradient");
  ASSERT_EQ(s.lora_grads.size(), w.lora_grads.size());
  for (size_t i = 0; i < s.lora_grads.size(); ++i)
    expect_close(s.lora_grads[i], w.lora_grads[i], "LoRA gradient " + std::to_string(i));

  // One gather per block in forward and one in backward, each moving this
  // rank's half of the block (padded to an even split); the lookup's three
  // collectives; the output layer (61 rows: one slice) for the logits.
  EXPECT_EQ(gather.calls, 2 * c.n_layers + 3 + 1);
  std::int64_t expect_bytes = 0, whole_bytes = 0;
  for (const auto& [name, t] : whole.named_weights())
    if (name.rfind("layers.", 0) == 0) whole_bytes += t.numel() * 4;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    std::int64_t n = 0;
    for (const auto& [name, t] : whole.named_weights())
      if (name.rfind("layers." + std::to_string(l) + ".", 0) == 0) n += t.numel();
    expect_bytes += 2 * ((n + 1) / 2) * 4;
  }
  EXPECT_EQ(gather.bytes, expect_bytes + lookup_bytes(run_tokens(c), c, c.vocab_size) +
                              (c.vocab_size + 1) / 2 * c.dim * 4);
  EXPECT_EQ(sharded.resident_block_bytes(), expect_bytes / 2);
  EXPECT_LE(double(sharded.resident_block_bytes()), 0.5 * double(whole_bytes) + 4 * c.n_layers);
  EXPECT_EQ(sharded.parameter_count(), whole.parameter_count());
  g_comm->barrier(CommTag::kControl);
}

TEST_P(Sharded, HiddenStatesAfterALayerMatch) {
  const auto c = config(GetParam());
  auto src = weights(c);
  Transformer whole(*src, {});
  ModelOptions opt;
  opt.shard_comm = g_comm;
  Transformer sharded(*src, opt);
  torch::NoGradGuard no_grad;
  auto tokens = torch::arange(9, torch::kLong).unsqueeze(0);
  auto a = sharded.hidden_after(sharded.embed(tokens), {}, 2);
  auto b = whole.hidden_after(whole.embed(tokens), {}, 2);
  expect_close(a, b, "hidden after 2 blocks");
}

INSTANTIATE_TEST_SUITE_P(Families, Sharded, ::testing::Values(Arch::kLlama, Arch::kGpt2),
                         [](const auto& info) {
                           return std::string(info.param == Arch::kLlama ? "llama" : "gpt2");
                         });

// A rank with no examples runs idle passes (the same gathers, no compute);
// the rank that computes gets the whole model's gradients.
TEST(ShardedLockstep, IdleRankKeepsStepWithAComputingRank) {
  const auto c = config(Arch::kLlama);
  auto src = weights(c);
  ModelOptions opt;
  opt.shard_comm = g_comm;
  Transformer sharded(*src, opt);
  auto ls = attach_lora(sharded);
  if (g_comm->rank() == 0) {
    Pass s = run(sharded, ls);
    Transformer whole(*src, {});
    auto lw = attach_lora(whole);
    Pass w = run(whole, lw);
    expect_close(s.prefix_grad, w.prefix_grad, "prompt gradient");
    for (size_t i = 0; i < s.lora_grads.size(); ++i)
      expect_close(s.lora_grads[i], w.lora_grads[i], "LoRA gradient " + std::to_string(i));
  } else {
    sharded.idle_pass(c.n_layers, /*backward=*/true, Transformer::OutputUse::kLogits);
  }
  g_comm->barrier(CommTag::kControl);
}

// model.recompute on a sharded model: blocks that keep their graph (and the
// gathered weights it saved) give the same bits as recomputed ones, match
// the whole model, and still join the backward gathers (2 per block), so an
// idle rank running idle_pass keeps step with a rank that keeps blocks.
TEST(ShardedRecompute, EveryModeMatchesAndGathersAlike) {
  using R = ModelOptions::Recompute;
  const auto c = config(Arch::kLlama);
  auto src = weights(c);
  Transformer whole(*src, {});
  auto lw = attach_lora(whole);
  const Pass w = run(whole, lw);
  Pass always;
  // Budget of 60 kB: in `run` (2 x 10 positions) a block keeps ~37 kB of
  // estimated activations plus its 19 kB of gathered f32 weights: block 0
  // kept, blocks 1 and 2 recomputed.
  for (auto [mode, budget] : {std::pair{R::kAlways, 0}, {R::kNever, 0}, {R::kAuto, 60'000}}) {
    SCOPED_TRACE(int(mode));
    ModelOptions opt;
    opt.shard_comm = g_comm;
    opt.recompute = mode;
    opt.activation_budget_bytes = budget;
    Transformer sharded(*src, opt);
    auto ls = attach_lora(sharded);
    g_comm->reset_counters();
    Pass s = run(sharded, ls);
    EXPECT_EQ(g_comm->counters(CommTag::kGather).calls, 2 * c.n_layers + 4);  // + lookup, logits
    // Every gather lands in one of the two reused buffers when no block is
    // kept for backward; a kept block holds its buffer, so later gathers
    // take fresh ones.
    const auto [pooled, fresh] = sharded.gather_buffer_uses();
    EXPECT_EQ(pooled + fresh, 2 * c.n_layers);
    if (mode == R::kAlways) EXPECT_EQ(fresh, 0);
    if (mode == R::kNever) EXPECT_GT(fresh, 0);
    expect_close(s.logits, w.logits, "logits");
    expect_close(s.prefix_grad, w.prefix_grad, "prompt gradient");
    for (size_t i = 0; i < s.lora_grads.size(); ++i)
      expect_close(s.lora_grads[i], w.lora_grads[i], "LoRA gradient " + std::to_string(i));
    if (mode == R::kAlways) {
      always = s;
      continue;
    }
    EXPECT_TRUE(torch::equal(s.logits, always.logits));
    EXPECT_TRUE(torch::equal(s.prefix_grad, always.prefix_grad));
    for (size_t i = 0; i < s.lora_grads.size(); ++i)
      EXPECT_TRUE(torch::equal(s.lora_grads[i], always.lora_grads[i])) << "LoRA gradient " << i;
  }
  ModelOptions opt;
  opt.shard_comm = g_comm;
  opt.recompute = R::kNever;
  Transformer sharded(*src, opt);
  auto ls = attach_lora(sharded);
  if (g_comm->rank() == 0)
    expect_close(run(sharded, ls).prefix_grad, w.prefix_grad, "prompt gradient beside an idle rank");
  else
    sharded.idle_pass(c.n_layers, /*backward=*/true, Transformer::OutputUse::kLogits);
  g_comm->barrier(CommTag::kControl);
}

// Last-block pruning (prefixed_hidden_at at one position per sequence) on a
// sharded model: the same hidden states and gradients as the whole model
// pruning alike, and as the whole model without pruning (other rounding),
// with one gather per block in each direction.
TEST(ShardedPrune, PrunedLastBlockMatchesTheWholeModel) {
  const auto c = config(Arch::kLlama);
  auto src = weights(c);
  auto pass = [&](bool shard, bool prune) {
    ModelOptions opt;
    opt.shard_comm = shard ? g_comm : nullptr;
    opt.prune_last_block = prune;
    Transformer m(*src, opt);
    auto lora = attach_lora(m);  // dropout set but not drawn: no dropout keys
    auto gen = at::detail::createCPUGenerator(4);
    auto tokens = at::randint(c.vocab_size, {3, 7}, gen);
    auto mask = torch::ones({3, 7}, torch::kLong);
    mask.index_put_({1, torch::indexing::Slice(0, 3)}, 0);
    auto prefix = at::randn({2, c.dim}, gen).requires_grad_(true);
    auto positions = torch::tensor({8, 8, 5}, torch::kLong);
    auto w = at::randn({3, c.dim}, gen);
    g_comm->reset_counters();
    Pass p;
    p.logits = m.prefixed_hidden_at(tokens, prefix, mask, positions);
    (p.logits * w).sum().backward();
    if (shard) EXPECT_EQ(g_comm->counters(CommTag::kGather).calls, 2 * c.n_layers + 3);  // + lookup
    p.prefix_grad = prefix.grad();
    for (const auto& a : lora) p.lora_grads.push_back(a->a.grad()), p.lora_grads.push_back(a->b.grad());
    return p;
  };
  const Pass sharded = pass(true, true), whole = pass(false, true), plain = pass(false, false);
  expect_close(sharded.logits, whole.logits, "pruned hidden states");
  expect_close(sharded.prefix_grad, whole.prefix_grad, "pruned prompt gradient");
  for (size_t i = 0; i < whole.lora_grads.size(); ++i)
    expect_close(sharded.lora_grads[i], whole.lora_grads[i], "pruned LoRA gradient " + std::to_string(i));
  // Pruning changes rounding only: within f32 rounding of the full block.
  EXPECT_TRUE(torch::allclose(whole.logits, plain.logits, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(whole.prefix_grad, plain.prefix_grad, 1e-4, 1e-3));
  g_comm->barrier(CommTag::kControl);
}

// Sharded loading reads each rank's slice from a safetensors directory and
// gives the same model as loading it whole.
TEST(ShardedLoading, SafetensorsDirectoryMatchesWholeLoad) {
  const std::string dir = test::shared_temp_dir(*g_comm) + "/model";
  if (g_comm->rank() == 0) {
    auto c = config(Arch::kLlama);
    c.qkv_bias = false;  // the plain llama layout
    write_hf_llama_directory(*weights(c), dir, "f32");
  }
  g_comm->barrier(CommTag::kControl);
  auto src = open_model(dir);
  ModelOptions opt;
  opt.shard_comm = g_comm;
  Transformer sharded(*src, opt);
  Transformer whole(*src, {});
  torch::NoGradGuard no_grad;
  auto tokens = torch::arange(1, 12, torch::kLong).unsqueeze(0);
  expect_close(sharded.forward(tokens), whole.forward(tokens), "logits from the directory");
  g_comm->barrier(CommTag::kControl);
}

// A family's config, with its norms moved away from 1 (so they matter):
// sharded logits and gradients equal the whole model's; `kept` checks that
// the family's extra weights survived sharding.
template <class Kept>
void expect_family_sharded_like_whole(const ModelConfig& c, Kept kept) {
  auto src = weights(c);
  for (auto& [name, t] : src->tensors())
    if (name.find("_norm.") != std::string::npos) t.add_(at::rand(t.sizes(), at::detail::createCPUGenerator(2)));
  Transformer whole(*src, {});
  ModelOptions opt;
  opt.shard_comm = g_comm;
  Transformer sharded(*src, opt);
  ASSERT_TRUE(kept(sharded));
  auto lw = attach_lora(whole);
  auto ls = attach_lora(sharded);
  Pass s = run(sharded, ls);
  Pass w = run(whole, lw);
  expect_close(s.logits, w.logits, "logits");
  expect_close(s.prefix_grad, w.prefix_grad, "prompt gradient");
  ASSERT_EQ(s.lora_grads.size(), w.lora_grads.size());
  for (size_t i = 0; i < s.lora_grads.size(); ++i)
    expect_close(s.lora_grads[i], w.lora_grads[i], "LoRA gradient " + std::to_string(i));
  g_comm->barrier(CommTag::kControl);
}

// The family features inside a block (Qwen3's q/k norms, kept whole on every
// rank; a sliding window on some layers; LongRoPE past the original length)
// give the same logits and gradients sharded as whole.
TEST(ShardedFamilies, QkNormsWindowAndLongRopeMatchTheWholeModel) {
  auto c = config(Arch::kLlama);
  c.qkv_bias = false;
  c.qk_norm = true;
  c.sliding_window = 4;  // 10 positions with the prompt
  c.sliding_layers = {true, false, true};
  c.rope_scaling.type = RopeScaling::Type::kLongRope;
  c.rope_scaling.original_max_positions = 6;
  c.rope_scaling.short_factor = {1.0, 1.5, 2.0};
  c.rope_scaling.long_factor = {2.0, 3.0, 5.0};
  c.rope_scaling.attention_factor = 1.2;
  expect_family_sharded_like_whole(c, [](const Transformer& sharded) {
    return sharded.blocks()[1].q_norm.weight.defined();
  });
}

// Gemma blocks: norms after attention and the MLP (kept whole on every rank),
// GeGLU, soft-capped scores and logits, a local RoPE base on sliding layers.
TEST(ShardedFamilies, GemmaBlocksMatchTheWholeModel) {
  auto c = config(Arch::kLlama);
  c.qkv_bias = false;
  c.gemma = true;
  c.qk_norm = true;
  c.attn_softcap = 1.5;
  c.final_softcap = 4.0;
  c.query_scale = 0.3;
  c.sliding_window = 4;
  c.sliding_layers = {true, true, false};
  c.rope_local_theta = 50.0;
  expect_family_sharded_like_whole(c, [](const Transformer& sharded) {
    return sharded.blocks()[2].post_mlp_norm.weight.defined();
  });
}

// Vocabulary sharding: the embedding and the output layer in slices of 16
// rows (61 = 3 x 16 + 13: a short last slice, and 61 rows not divisible by
// the 2 ranks). Lookups return the source's rows exactly; logits, gradients
// and log-likelihoods are the bits of the whole model slicing alike, and
// within 1e-6 of the whole model computing the output layer in one product.
void expect_vocab_sharded_like_whole(const ModelConfig& c) {
  ASSERT_EQ(g_comm->size(), 2) << "run under mpirun -np 2";
  constexpr std::int64_t G = 16;
  const std::int64_t slices = (c.vocab_size + G - 1) / G;
  auto src = weights(c);
  const torch::Tensor emb = src->tensors().at("tok_embeddings");
  const torch::Tensor head = c.tie_embeddings ? emb : src->tensors().at("lm_head.weight");
  ModelOptions wopt;
  wopt.vocab_slice_rows = G;
  Transformer whole(*src, wopt), plain(*src, {});
  ModelOptions opt = wopt;
  opt.shard_comm = g_comm;
  Transformer sharded(*src, opt);
  EXPECT_FALSE(sharded.token_embedding().defined()) << "the embedding must not stay whole";
  EXPECT_FALSE(sharded.output_embedding().defined()) << "the output layer must not stay whole";

  // Each table keeps half of every slice's rows (an odd count rounds up).
  const std::int64_t tables = c.tie_embeddings ? 1 : 2;
  std::int64_t half = 0;
  for (std::int64_t s = 0; s < slices; ++s) half += (std::min(G, c.vocab_size - s * G) + 1) / 2 * c.dim * 4;
  EXPECT_EQ(sharded.resident_vocab_bytes(), tables * half);
  EXPECT_EQ(whole.resident_vocab_bytes(), tables * c.vocab_size * c.dim * 4);

  {
    torch::NoGradGuard no_grad;
    // Every slice, both ends of each, a repeat.
    auto ids = torch::tensor({60, 0, 15, 16, 31, 32, 47, 48, 60, 7}, torch::kLong);
    g_comm->reset_counters();
    auto looked = sharded.embed(ids.view({2, 5}));
    const auto exchange = g_comm->counters(CommTag::kGather);
    EXPECT_EQ(exchange.calls, 3) << "counts, ids, rows";
    EXPECT_EQ(exchange.bytes, lookup_bytes(ids, c, G)) << "bytes follow the ids, not the vocabulary";
    EXPECT_TRUE(torch::equal(looked.reshape({10, c.dim}), emb.index_select(0, ids)));
    EXPECT_TRUE(torch::equal(sharded.output_rows(ids), head.index_select(0, ids)));
    // Rank 1 asks for nothing beside rank 0's ids (it still serves its rows),
    // then neither asks.
    auto some = g_comm->rank() == 0 ? ids.narrow(0, 0, 6) : torch::zeros({0}, torch::kLong);
    EXPECT_TRUE(torch::equal(sharded.output_rows(some), head.index_select(0, some)));
    EXPECT_EQ(sharded.output_rows(torch::zeros({0}, torch::kLong)).size(0), 0);

    // log p(target) against an independent log-softmax in f64 of the whole
    // model's logits (one product over the vocabulary).
    auto gen = at::detail::createCPUGenerator(8);
    auto tokens = at::randint(c.vocab_size, {1, 9}, gen);
    auto h = plain.prefixed_hidden_states(tokens, {}, {}).squeeze(0);
    auto targets = torch::tensor({60, 0, 16, 15, 47, 48, 33, 2, 59}, torch::kLong);
    auto ref = torch::log_softmax(plain.logits(h).to(torch::kFloat64), -1)
                   .gather(1, targets.unsqueeze(1)).squeeze(1);
    auto ll_s = sharded.token_log_likelihoods(h, targets);
    auto ll_w = whole.token_log_likelihoods(h, targets);
    EXPECT_TRUE(torch::equal(ll_s, ll_w)) << "sharded and whole log-likelihoods differ in bits";
    EXPECT_LE((ll_s - ref).abs().max().item<double>(), 1e-6 * std::max(1.0, ref.abs().max().item<double>()));
  }

  auto lw = attach_lora(whole), ls = attach_lora(sharded), lp = attach_lora(plain);
  g_comm->reset_counters();
  Pass s = run(sharded, ls);
  const auto gather = g_comm->counters(CommTag::kGather);
  Pass w = run(whole, lw), p = run(plain, lp);
  // Forward: the lookup's exchange, the blocks, the output layer's slices; backward: the blocks.
  EXPECT_EQ(gather.calls, 2 * c.n_layers + 3 + slices);
  EXPECT_TRUE(torch::equal(s.logits, w.logits)) << "sharded and whole logits differ in bits";
  expect_close(s.logits, p.logits, "logits against one output product");
  expect_close(s.prefix_grad, p.prefix_grad, "prompt gradient");
  ASSERT_EQ(s.lora_grads.size(), p.lora_grads.size());
  for (size_t i = 0; i < s.lora_grads.size(); ++i)
    expect_close(s.lora_grads[i], p.lora_grads[i], "LoRA gradient " + std::to_string(i));
  g_comm->barrier(CommTag::kControl);
}

TEST(ShardedVocab, UntiedLlamaMatchesTheWholeModel) { expect_vocab_sharded_like_whole(config(Arch::kLlama)); }

TEST(ShardedVocab, TiedGpt2MatchesTheWholeModel) { expect_vocab_sharded_like_whole(config(Arch::kGpt2)); }

// Gemma 2's soft-capped final logits, with tied embeddings as Gemma has.
TEST(ShardedVocab, TiedSoftCappedGemmaMatchesTheWholeModel) {
  auto c = config(Arch::kLlama);
  c.qkv_bias = false;
  c.gemma = true;
  c.final_softcap = 4.0;
  c.tie_embeddings = true;
  expect_vocab_sharded_like_whole(c);
}

// Uneven work with the vocabulary sharded: rank 0 scores two units of class
// scores (lookup, blocks, output rows, backward) and one text's
// log-likelihoods; rank 1 scores one unit, then idles through the rest
// (idle_pass with the output layer), and rank 0's results match the whole
// model's.
TEST(ShardedVocab, IdleRankKeepsStepThroughLookupsAndOutput) {
  const auto c = config(Arch::kLlama);
  auto src = weights(c);
  ModelOptions wopt;
  wopt.vocab_slice_rows = 16;
  ModelOptions opt = wopt;
  opt.shard_comm = g_comm;
  opt.prune_last_block = wopt.prune_last_block = true;
  Transformer sharded(*src, opt), whole(*src, wopt);
  auto gen = at::detail::createCPUGenerator(6);
  auto tokens = at::randint(c.vocab_size, {2, 6}, gen);
  auto labels = torch::tensor({3, 50}, torch::kLong);  // two "classes" in different slices
  auto unit = [&](Transformer& m, std::uint64_t seed) {
    auto prefix = at::randn({2, c.dim}, at::detail::createCPUGenerator(seed)).requires_grad_(true);
    auto h = m.prefixed_hidden_at(tokens, prefix, {}, torch::tensor({7, 7}, torch::kLong));
    auto scores = torch::matmul(h, m.output_rows(labels).t());
    scores.sum().backward();
    return std::pair{scores.detach(), prefix.grad()};
  };
  const int mine = g_comm->rank() == 0 ? 2 : 1;
  for (int u = 0; u < 2; ++u) {
    if (u >= mine) {
      sharded.idle_pass(c.n_layers, /*backward=*/true, Transformer::OutputUse::kRows);
      continue;
    }
    auto [s_scores, s_grad] = unit(sharded, 10 + u);
    auto [w_scores, w_grad] = unit(whole, 10 + u);
    expect_close(s_scores, w_scores, "class scores of unit " + std::to_string(u));
    expect_close(s_grad, w_grad, "prompt gradient of unit " + std::to_string(u));
  }
  torch::NoGradGuard no_grad;
  auto text = tokens.narrow(0, 0, 1);
  auto targets = text.squeeze(0).slice(0, 1);
  if (g_comm->rank() == 0) {
    auto ll = [&](Transformer& m) {
      return m.token_log_likelihoods(m.prefixed_hidden_states(text, {}, {}).squeeze(0).slice(0, 0, -1), targets);
    };
    expect_close(ll(sharded), ll(whole), "log-likelihoods beside an idle rank");
  } else {
    sharded.idle_pass(c.n_layers, /*backward=*/false, Transformer::OutputUse::kLogits);
  }
  g_comm->barrier(CommTag::kControl);
}

}  // namespace
}  // namespace sparc

int main(int argc, char** argv) {
  return sparc::test::run_mpi_tests(argc, argv, 60, &sparc::g_comm);
}
