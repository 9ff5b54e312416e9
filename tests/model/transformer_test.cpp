#include "model/transformer.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "model/generator.h"
#include "model/model_loader.h"
#include "naive_reference.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace sparc {
namespace {

const char* kAidreams = "models/aidreams260K/model.bin";

naive::Weights to_naive(const WeightSource& src) {
  naive::Weights w;
  for (const auto& [name, shape] : expected_tensors(src.config())) {
    auto t = src.load(name).to(torch::kFloat32).contiguous();
    w[name] = std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
  return w;
}

double max_abs_diff(const torch::Tensor& logits, const naive::Matrix& ref) {
  auto l = logits.to(torch::kFloat64).contiguous();
  double worst = 0;
  for (size_t t = 0; t < ref.size(); ++t)
    for (size_t v = 0; v < ref[t].size(); ++v)
      worst = std::max(worst, std::abs(l[t][v].item<double>() - ref[t][v]));
  return worst;
}

ModelConfig small_llama(bool gqa, bool bias) {
  ModelConfig c;
  c.arch = Arch::kLlama;
  c.vocab_size = 50;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = gqa ? 2 : 4;
  c.head_dim = 8;
  c.ffn_dim = 48;
  c.max_seq_len = 64;
  c.qkv_bias = bias;
  c.tie_embeddings = false;
  c.rope_theta = 500.0;  // a small theta makes the rotation matter at short lengths
  return c;
}

ModelConfig small_gpt2() {
  ModelConfig c;
  c.arch = Arch::kGpt2;
  c.vocab_size = 40;
  c.dim = 24;
  c.n_layers = 2;
  c.n_heads = 3;
  c.n_kv_heads = 3;
  c.head_dim = 8;
  c.ffn_dim = 96;
  c.max_seq_len = 16;
  c.tie_embeddings = true;
  return c;
}

// Random models use a larger spread than random_weights' default so every
// layer moves the logits visibly.
std::unique_ptr<TensorMapSource> lively_weights(const ModelConfig& c, std::uint64_t seed) {
  auto src = random_weights(c, seed);
  for (auto& [name, t] : src->tensors())
    if (name.find("norm") == std::string::npos) t.mul_(8.0);
  return src;
}

TEST(RopeRows, PairToHalfPermutesEachHeadAsDocumented) {
  // Two heads of size 4: rows (0,1,2,3 | 4,5,6,7) -> (0,2,1,3 | 4,6,5,7).
  auto w = torch::arange(8, torch::kFloat32).unsqueeze(1).repeat({1, 3});
  auto h = pair_to_half_rope_rows(w, 4);
  std::vector<float> expect = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(h[i][0].item<float>(), expect[i]) << "row " << i;
  EXPECT_TRUE(torch::equal(half_to_pair_rope_rows(h, 4), w));
}

TEST(Transformer, Aidreams260KMatchesLlama2cReferenceF32) {
  SPARC_REQUIRE_SHARED(kAidreams);
  const std::string path = test::shared_dir() + "/" + kAidreams;
  auto src = open_model(path);
  EXPECT_EQ(src->config().dim, 64);
  EXPECT_EQ(src->config().n_layers, 4);
  EXPECT_EQ(src->config().vocab_size, 512);
  Transformer model(*src, {});
  std::vector<int> tokens = {1, 262, 400, 35, 290, 17, 450, 500, 3, 120, 88, 301, 259, 44, 7, 200};
  auto ids = torch::tensor(std::vector<std::int64_t>(tokens.begin(), tokens.end())).unsqueeze(0);
  auto logits = model.forward(ids).squeeze(0);
  auto ref = naive::llama2c_forward(path, tokens);
  EXPECT_LE(max_abs_diff(logits, ref), 1e-4);
  EXPECT_EQ(model.parameter_count(), src->config().parameter_count());
}

TEST(Transformer, Aidreams260KBf16StaysWithinRoundingOfF32) {
  SPARC_REQUIRE_SHARED(kAidreams);
  const std::string path = test::shared_dir() + "/" + kAidreams;
  auto src = open_model(path);
  ModelOptions bf16;
  bf16.dtype = torch::kBFloat16;
  Transformer model(*src, bf16);
  std::vector<int> tokens = {1, 262, 400, 35, 290, 17, 450, 500, 3, 120, 88, 301};
  auto ids = torch::tensor(std::vector<std::int64_t>(tokens.begin(), tokens.end())).unsqueeze(0);
  auto logits = model.forward(ids).squeeze(0).to(torch::kFloat64);
  auto ref = naive::llama2c_forward(path, tokens);
  // bf16 keeps 8 significant bits: each rounding has relative error <= 2^-9.
  // Weights and every activation are rounded (about 4 roundings per
  // sub-layer, 4 layers, errors partly cancelling), so the logits drift by a
  // few percent of their spread. Bound: 4% of the reference's largest |logit|
  // per entry, and a mean error below 1% of it; plus the greedy choice
  // agrees wherever the reference's top-2 margin exceeds that bound.
  double scale = 0, sum_err = 0, count = 0;
  for (const auto& row : ref)
    for (double v : row) scale = std::max(scale, std::abs(v));
  for (size_t t = 0; t < ref.size(); ++t) {
    double best = -1e300, second = -1e300;
    int arg = -1;
    for (size_t v = 0; v < ref[t].size(); ++v) {
      double err = std::abs(logits[t][v].item<double>() - ref[t][v]);
      EXPECT_LE(err, 0.04 * scale) << "position " << t << " token " << v;
      sum_err += err;
      ++count;
      if (ref[t][v] > best) {
        second = best;
        best = ref[t][v];
        arg = int(v);
      } else {
        second = std::max(second, ref[t][v]);
      }
    }
    if (best - second > 0.08 * scale) EXPECT_EQ(logits[t].argmax().item<std::int64_t>(), arg);
  }
  EXPECT_LE(sum_err / count, 0.01 * scale);
}

TEST(Transformer, GreedyGenerationMatchesReferenceArgmax) {
  SPARC_REQUIRE_SHARED(kAidreams);
  const std::string path = test::shared_dir() + "/" + kAidreams;
  auto src = open_model(path);
  Transformer model(*src, {});
  GenerateOptions opt;
  opt.max_new_tokens = 12;
  auto out = generate(model, {1}, opt);
  ASSERT_EQ(out.size(), 12u);
  std::vector<int> seq = {1};
  for (int step = 0; step < 12; ++step) {
    auto logits = naive::llama2c_forward(path, seq).back();
    int arg = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(out[step], arg) << "step " << step;
    seq.push_back(out[step]);  // follow ours, so one divergence is not counted twice
  }
}

class RandomModel : public ::testing::TestWithParam<int> {};

ModelConfig config_for(int which) {
  switch (which) {
    case 0: return small_llama(false, false);
    case 1: return small_llama(true, false);  // grouped-query attention
    case 2: return small_llama(true, true);   // and Qwen2-style q/k/v bias
    default: return small_gpt2();
  }
}

TEST_P(RandomModel, MatchesNaiveReferenceWithSoftPromptPrefix) {
  const ModelConfig c = config_for(GetParam());
  auto src = lively_weights(c, 1234 + GetParam());
  auto w = to_naive(*src);
  Transformer model(*src, {});
  std::vector<std::int64_t> tokens = {3, 17, 9, 22, 1, 30, 5};
  auto prefix = at::normal(0.0, 0.5, {4, c.dim}, at::detail::createCPUGenerator(7));
  auto logits = model.forward(torch::tensor(tokens).unsqueeze(0), prefix).squeeze(0);
  ASSERT_EQ(logits.size(0), 4 + 7);

  naive::Matrix inputs;
  for (int p = 0; p < 4; ++p) {
    std::vector<double> row(c.dim);
    for (int i = 0; i < c.dim; ++i) row[i] = prefix[p][i].item<double>();
    inputs.push_back(row);
  }
  for (auto t : tokens) inputs.push_back(naive::embedding(c, w, int(t)));
  auto ref = naive::forward(c, w, inputs);
  EXPECT_LE(max_abs_diff(logits, ref), 1e-4);
  // The reference must be sensitive to what is tested: the prefix changes the logits.
  auto without = model.forward(torch::tensor(tokens).unsqueeze(0)).squeeze(0);
  EXPECT_GT((without - logits.slice(0, 4)).abs().max().item<double>(), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Families, RandomModel, ::testing::Values(0, 1, 2, 3));

TEST_P(RandomModel, PaddedBatchEqualsUnpaddedSequences) {
  const ModelConfig c = config_for(GetParam());
  auto src = lively_weights(c, 99);
  Transformer model(*src, {});
  std::vector<std::int64_t> a = {4, 8, 15, 16, 23, 2}, b = {11, 12, 13};
  // Row 0: a, unpadded. Row 1: b left-padded by 2 and right-padded by 1.
  auto tokens = torch::tensor(std::vector<std::int64_t>{4, 8, 15, 16, 23, 2,  //
                                                       0, 0, 11, 12, 13, 0})
                    .view({2, 6});
  auto mask = torch::tensor(std::vector<std::int64_t>{1, 1, 1, 1, 1, 1,  //
                                                     0, 0, 1, 1, 1, 0})
                  .view({2, 6});
  auto prefix = at::normal(0.0, 0.5, {2, c.dim}, at::detail::createCPUGenerator(3));
  auto batch = model.forward(tokens, prefix, mask);
  auto alone_a = model.forward(torch::tensor(a).unsqueeze(0), prefix);
  auto alone_b = model.forward(torch::tensor(b).unsqueeze(0), prefix);
  EXPECT_LE((batch[0] - alone_a[0]).abs().max().item<double>(), 1e-5);
  // Prefix rows and the three real tokens (batch columns 2 + 2..4).
  EXPECT_LE((batch[1].slice(0, 0, 2) - alone_b[0].slice(0, 0, 2)).abs().max().item<double>(), 1e-5);
  EXPECT_LE((batch[1].slice(0, 4, 7) - alone_b[0].slice(0, 2, 5)).abs().max().item<double>(), 1e-5);
  EXPECT_FALSE(batch.isnan().any().item<bool>());
}

TEST(Transformer, FrozenWeightsGetNoGradientsAndPrefixGradientMatchesFiniteDifferences) {
  const ModelConfig c = small_llama(true, true);
  auto src = lively_weights(c, 5);
  ModelOptions f64;
  f64.dtype = torch::kFloat64;
  Transformer model(*src, f64);
  for (const auto& [name, t] : model.named_weights()) EXPECT_FALSE(t.requires_grad()) << name;

  auto tokens = torch::tensor(std::vector<std::int64_t>{5, 6, 7, 8}).unsqueeze(0);
  auto prefix = at::normal(0.0, 0.3, {3, c.dim}, at::detail::createCPUGenerator(11))
                    .to(torch::kFloat64)
                    .requires_grad_(true);
  auto loss_of = [&](const torch::Tensor& p) {
    return torch::log_softmax(model.forward(tokens, p).select(1, -1), -1)[0][9].neg();
  };
  auto loss = loss_of(prefix);
  loss.backward();
  ASSERT_TRUE(prefix.grad().defined());
  for (const auto& [name, t] : model.named_weights()) EXPECT_FALSE(t.grad().defined()) << name;

  // Central differences along a random direction, in float64.
  torch::NoGradGuard no_grad;
  auto dir = at::normal(0.0, 1.0, {3, c.dim}, at::detail::createCPUGenerator(12)).to(torch::kFloat64);
  const double h = 1e-5;
  double numeric = (loss_of(prefix + h * dir) - loss_of(prefix - h * dir)).item<double>() / (2 * h);
  double analytic = (prefix.grad() * dir).sum().item<double>();
  EXPECT_NEAR(numeric, analytic, 1e-6 * std::max(1.0, std::abs(analytic)));
}

TEST(Transformer, MissingTensorIsNamed) {
  auto src = random_weights(small_llama(false, false), 1);
  src->tensors().erase("layers.1.up.weight");
  try {
    Transformer model(*src, {});
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor 'layers.1.up.weight'"), std::string::npos)
        << e.what();
  }
}

TEST(Transformer, WrongShapeNamesTensorAndBothShapes) {
  auto src = random_weights(small_llama(false, false), 1);
  src->tensors()["layers.0.k.weight"] = torch::zeros({32, 31});
  try {
    Transformer model(*src, {});
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'layers.0.k.weight' has shape [32, 31], expected [32, 32]"),
              std::string::npos)
        << msg;
  }
}

TEST(Generator, PickTokenGreedyAndSampledByHand) {
  // Greedy: the largest logit, lowest id on ties.
  EXPECT_EQ(pick_token({0.5f, 2.0f, 2.0f, -1.0f}, 0.0, 0.99), 1);
  // T = 1 over logits (0, ln 3): probabilities 1/4 and 3/4.
  std::vector<float> l = {0.0f, float(std::log(3.0))};
  EXPECT_EQ(pick_token(l, 1.0, 0.20), 0);
  EXPECT_EQ(pick_token(l, 1.0, 0.30), 1);
  // T = 0.5 squares the odds: 1/10 and 9/10.
  EXPECT_EQ(pick_token(l, 0.5, 0.09), 0);
  EXPECT_EQ(pick_token(l, 0.5, 0.11), 1);
}

}  // namespace
}  // namespace sparc

namespace sparc {
namespace {

// Long enough (with the prefix) for the attention to run its queries in
// causal chunks (kQueryChunk in transformer.cpp is 128).
std::vector<std::int64_t> long_tokens(std::int64_t n, std::int64_t vocab) {
  std::vector<std::int64_t> t(n);
  for (std::int64_t i = 0; i < n; ++i) t[i] = (i * 7 + 3) % vocab;
  return t;
}

TEST(Transformer, ChunkedCausalAttentionMatchesNaiveReferenceOnALongSequence) {
  for (bool gqa : {false, true}) {
    const ModelConfig c = small_llama(gqa, false);
    auto src = lively_weights(c, 77);
    auto w = to_naive(*src);
    Transformer model(*src, {});
    auto tokens = long_tokens(297, c.vocab_size);
    auto prefix = at::normal(0.0, 0.5, {3, c.dim}, at::detail::createCPUGenerator(8));
    auto logits = model.forward(torch::tensor(tokens).unsqueeze(0), prefix).squeeze(0);
    ASSERT_EQ(logits.size(0), 300);
    naive::Matrix inputs;
    for (int p = 0; p < 3; ++p) {
      std::vector<double> row(c.dim);
      for (int i = 0; i < c.dim; ++i) row[i] = prefix[p][i].item<double>();
      inputs.push_back(row);
    }
    for (auto t : tokens) inputs.push_back(naive::embedding(c, w, int(t)));
    EXPECT_LE(max_abs_diff(logits, naive::forward(c, w, inputs)), 1e-4) << "gqa " << gqa;
  }
}

// prefixed_hidden_at runs the last block at one position per sequence: the
// same hidden states as the full pass at those positions, and (f64, long
// padded batch: chunked attention, pruned last block) a prefix gradient that
// matches central differences.
TEST(Transformer, HiddenAtOnePositionMatchesFullPassAndFiniteDifferences) {
  const ModelConfig c = small_llama(true, true);
  auto src = lively_weights(c, 21);
  ModelOptions f64;
  f64.dtype = torch::kFloat64;
  f64.prune_last_block = true;
  Transformer model(*src, f64);
  const std::int64_t T = 250;
  auto tokens = torch::tensor(long_tokens(2 * T, c.vocab_size)).view({2, T});
  auto mask = torch::ones({2, T}, torch::kLong);
  mask[1].slice(0, T - 40).fill_(0);  // row 1: 40 right-padded positions
  const std::int64_t P = 3;
  auto positions = torch::tensor(std::vector<std::int64_t>{P + T - 1, P + T - 41});
  auto prefix = at::normal(0.0, 0.3, {P, c.dim}, at::detail::createCPUGenerator(13))
                    .to(torch::kFloat64)
                    .requires_grad_(true);
  {
    torch::NoGradGuard no_grad;
    auto full = model.prefixed_hidden_states(tokens, prefix, mask);
    auto at = model.prefixed_hidden_at(tokens, prefix, mask, positions);
    EXPECT_LE((at[0] - full[0][P + T - 1]).abs().max().item<double>(), 1e-10);
    EXPECT_LE((at[1] - full[1][P + T - 41]).abs().max().item<double>(), 1e-10);
  }
  auto w = model.output_embedding().slice(0, 0, 2);  // two "class" rows
  auto loss_of = [&](const torch::Tensor& p) {
    auto scores = torch::matmul(model.prefixed_hidden_at(tokens, p, mask, positions), w.t());
    return torch::log_softmax(scores, -1).select(1, 0).sum().neg();
  };
  loss_of(prefix).backward();
  torch::NoGradGuard no_grad;
  auto dir = at::normal(0.0, 1.0, {P, c.dim}, at::detail::createCPUGenerator(14)).to(torch::kFloat64);
  const double h = 1e-5;
  double numeric = (loss_of(prefix + h * dir) - loss_of(prefix - h * dir)).item<double>() / (2 * h);
  double analytic = (prefix.grad() * dir).sum().item<double>();
  EXPECT_NEAR(numeric, analytic, 1e-6 * std::max(1.0, std::abs(analytic)));
  EXPECT_GT(std::abs(analytic), 1e-6);  // the check is not vacuous
}

// bf16 frozen weights (their transposes cached, f32 trainable prefix): the
// prefix gradient points where f32's does.
TEST(Transformer, Bf16PrefixGradientFollowsF32) {
  const ModelConfig c = small_llama(false, false);
  auto src = lively_weights(c, 31);
  auto grad_in = [&](torch::Dtype dtype) {
    ModelOptions o;
    o.dtype = dtype;
    Transformer model(*src, o);
    auto tokens = torch::tensor(long_tokens(40, c.vocab_size)).view({2, 20});
    auto prefix = at::normal(0.0, 0.3, {4, c.dim}, at::detail::createCPUGenerator(15))
                      .requires_grad_(true);
    auto logits = model.forward(tokens, prefix);
    torch::log_softmax(logits.select(1, -1), -1).select(1, 0).sum().neg().backward();
    return prefix.grad().to(torch::kFloat64).flatten();
  };
  auto g32 = grad_in(torch::kFloat32), g16 = grad_in(torch::kBFloat16);
  const double cosine = (g32 * g16).sum().item<double>() / (g32.norm() * g16.norm()).item<double>();
  EXPECT_GT(cosine, 0.98);
  EXPECT_LT((g16.norm() / g32.norm()).item<double>(), 1.1);
  EXPECT_GT((g16.norm() / g32.norm()).item<double>(), 0.9);
}

}  // namespace
}  // namespace sparc
