// sparc pretrain on a small generated corpus: the loss starts at the uniform
// value ln(vocab) and falls, the written directory holds exactly the trained
// model, and an unchanged config and corpus reuse it instead of training.
#include "train/pretrain.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/process.h"
#include "model/model_loader.h"
#include "test_util.h"
#include "tokenizer/byte_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace sparc {
namespace {

// Lines with strong regularities: a byte-level model can learn them quickly.
std::string write_corpus(const std::string& dir) {
  const char* animals[] = {"cat", "dog", "bird", "fox"};
  const char* places[] = {"mat", "log", "tree", "box"};
  std::ofstream out(dir + "/corpus.txt");
  for (int i = 0; i < 400; ++i)
    out << "the " << animals[i % 4] << " sat on the " << places[(i / 4) % 4] << ".\n";
  return dir + "/corpus.txt";
}

PretrainConfig small(const std::string& dir, std::vector<std::string> sets = {}) {
  const std::string yaml =
      "seed: 3\n"
      "out: model\n"
      "model: {dim: 32, layers: 2, heads: 2, ffn: 64, max_seq_len: 64}\n"
      "data: {text: corpus.txt, val_fraction: 0.2}\n"
      "train: {steps: 60, batch_size: 8, seq_len: 32, lr: 0.01, warmup_steps: 5, log_every: 20}\n";
  return parse_pretrain_config(yaml, dir + "/pretrain.yaml", dir, sets);
}

TEST(Pretrain, LossFallsFromUniformAndTheDirectoryHoldsTheTrainedModel) {
  const std::string dir = test::make_temp_dir();
  write_corpus(dir);
  auto cfg = small(dir);
  PretrainResult r = pretrain(cfg);
  EXPECT_FALSE(r.cached);
  EXPECT_EQ(r.steps, 60);
  // Weights of std 0.02 give nearly uniform next-token probabilities.
  EXPECT_NEAR(r.initial_val_loss, std::log(double(ByteTokenizer::kVocabSize)), 0.2);
  EXPECT_LT(r.final_val_loss, r.initial_val_loss - 2.0) << "the model did not learn";
  // The saved model is the trained one: it reproduces the final loss.
  EXPECT_NEAR(pretrain_validation_loss(cfg, dir + "/model"), r.final_val_loss, 1e-5);
  auto stamp = nlohmann::json::parse(read_text_file(dir + "/model/pretrain.json"));
  EXPECT_EQ(stamp["steps"], 60);
  EXPECT_EQ(stamp["config"], to_yaml(cfg));
  auto src = open_model(dir + "/model");
  EXPECT_EQ(src->config().vocab_size, ByteTokenizer::kVocabSize);
  EXPECT_EQ(src->config().n_layers, 2);
}

TEST(Pretrain, SameConfigAndDataReuseTheModelAndAChangeRetrains) {
  const std::string dir = test::make_temp_dir();
  const std::string corpus = write_corpus(dir);
  auto cfg = small(dir, {"train.steps=10"});
  EXPECT_FALSE(pretrain(cfg).cached);
  const std::string weights = read_text_file(dir + "/model/model.safetensors");
  PretrainResult again = pretrain(cfg);
  EXPECT_TRUE(again.cached);
  EXPECT_EQ(read_text_file(dir + "/model/model.safetensors"), weights);
  // Another step count retrains.
  EXPECT_FALSE(pretrain(small(dir, {"train.steps=11"})).cached);
  // So does other data under the same name.
  std::ofstream(corpus, std::ios::app) << "a new line of text.\n";
  EXPECT_FALSE(pretrain(small(dir, {"train.steps=11"})).cached);
}

TEST(Pretrain, Bf16MatrixProductsLearnToo) {
  const std::string dir = test::make_temp_dir();
  write_corpus(dir);
  PretrainResult r = pretrain(small(dir, {"train.dtype=bf16"}));
  EXPECT_LT(r.final_val_loss, r.initial_val_loss - 2.0);
}

// tokenizer: sentencepiece trains a BPE model with spm_train and writes it
// beside the weights; spm_encode (SentencePiece's own encoder) is the
// independent reference for what the written tokenizer.model means.
TEST(Pretrain, SentencePieceTokenizerIsTrainedAndWrittenBesideTheModel) {
  if (std::system("command -v spm_train >/dev/null && command -v spm_encode >/dev/null") != 0)
    GTEST_SKIP() << "spm_train/spm_encode not installed (Debian package sentencepiece; "
                    "scripts/setup.sh installs it)";
  const std::string dir = test::make_temp_dir();
  write_corpus(dir);
  auto cfg = small(dir, {"tokenizer=sentencepiece", "tokenizer_vocab=300", "train.steps=30"});
  PretrainResult r = pretrain(cfg);
  EXPECT_FALSE(r.cached);
  auto tok = load_tokenizer(dir + "/model");
  EXPECT_EQ(tok->vocab_size(), 300);
  EXPECT_EQ(open_model(dir + "/model")->config().vocab_size, 300);
  EXPECT_NEAR(r.initial_val_loss, std::log(300.0), 0.2);
  EXPECT_LT(r.final_val_loss, r.initial_val_loss - 1.0) << "the model did not learn";
  EXPECT_NEAR(pretrain_validation_loss(cfg, dir + "/model"), r.final_val_loss, 1e-5);
  EXPECT_FALSE(file_exists(dir + "/model.tokenizer")) << "the work directory is left behind";
  // Our reading of the file agrees with SentencePiece's encoder.
  const std::string text = "the fox sat on the tree.";
  std::ofstream(dir + "/in.txt") << text << "\n";
  ASSERT_EQ(run_process({"spm_encode", "--model=" + dir + "/model/tokenizer.model",
                         "--output_format=id", "--input=" + dir + "/in.txt",
                         "--output=" + dir + "/ids.txt"}),
            0);
  std::vector<std::int32_t> expected;
  std::ifstream ids(dir + "/ids.txt");
  for (std::int32_t id; ids >> id;) expected.push_back(id);
  EXPECT_EQ(tok->encode(text), expected);
  auto hf = nlohmann::json::parse(read_text_file(dir + "/model/tokenizer_config.json"));
  EXPECT_EQ(hf["tokenizer_class"], "LlamaTokenizer");
  auto mc = nlohmann::json::parse(read_text_file(dir + "/model/config.json"));
  EXPECT_EQ(mc["bos_token_id"], 1);
  EXPECT_EQ(mc["eos_token_id"], 2);
  // Unchanged: reused; another vocabulary size: retrained.
  EXPECT_TRUE(pretrain(cfg).cached);
  EXPECT_FALSE(
      pretrain(small(dir, {"tokenizer=sentencepiece", "tokenizer_vocab=290", "train.steps=30"}))
          .cached);
}

TEST(PretrainConfig, ProblemsAreNamed) {
  try {
    parse_pretrain_config("model: {dim: 30, heads: 4}\ntrain: {seq_len: 1000, dtype: f16}\n",
                          "p.yaml", "");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string all = e.what();
    for (const char* part : {"out: required", "data.text: required", "model.heads: dim (30)",
                             "train.seq_len: is 1000, above model.max_seq_len",
                             "train.dtype: expected one of f32, bf16"})
      EXPECT_NE(all.find(part), std::string::npos) << part << "\n" << all;
  }
  try {
    parse_pretrain_config("out: m\ndata: {text: t}\ntokenizer_vocab: 4000\n", "p.yaml", "");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string all = e.what();
    for (const char* part : {"tokenizer_vocab: applies to tokenizer: sentencepiece only"})
      EXPECT_NE(all.find(part), std::string::npos) << part << "\n" << all;
  }
}

// The cache key as it was before model.device and comm existed (issue 18):
// a directory pretrained then must still be reused, so the key of an
// existing config may not change, and where it trains is not part of it.
TEST(PretrainConfig, DeviceAndBackendAreReadAndLeaveTheCacheKeyAlone) {
  const std::string yaml =
      "seed: 3\nout: /m\nmodel: {dim: 32, layers: 2, heads: 2, ffn: 64, max_seq_len: 64}\n"
      "data: {text: /c.txt, val_fraction: 0.2}\ntrain: {steps: 60, seq_len: 32}\n";
  const PretrainConfig plain = parse_pretrain_config(yaml, "p.yaml", "");
  EXPECT_EQ(plain.device, "cpu");
  EXPECT_EQ(plain.backend, "auto");
  EXPECT_EQ(to_yaml(plain),
            "seed: 3\n"
            "tokenizer: \"bytes\"\n"
            "model:\n  dim: 32\n  layers: 2\n  heads: 2\n  kv_heads: 0\n  ffn: 64\n"
            "  max_seq_len: 64\n"
            "data:\n  text:\n    - \"/c.txt\"\n  val_fraction: 0.2\n"
            "train:\n  steps: 60\n  batch_size: 16\n  seq_len: 32\n  lr: 0.003\n"
            "  weight_decay: 0.1\n  warmup_steps: 20\n  schedule: cosine\n  max_grad_norm: 1\n"
            "  dtype: f32\n");
  const PretrainConfig gpu = parse_pretrain_config(
      yaml, "p.yaml", "", {"model.device=cuda:1", "comm.backend=nccl", "comm.timeout_s=30"});
  EXPECT_EQ(gpu.device, "cuda:1");
  EXPECT_EQ(gpu.backend, "nccl");
  EXPECT_EQ(gpu.timeout_s, 30.0);
  EXPECT_EQ(to_yaml(gpu), to_yaml(plain));
  EXPECT_EQ(parse_pretrain_config(yaml, "p.yaml", "", {"model.device=auto"}).device, "auto");
}

TEST(PretrainConfig, DeviceAndBackendAreCheckedAsTheRunConfigChecksThem) {
  try {
    parse_pretrain_config(
        "out: m\ndata: {text: t}\nmodel: {device: gpu}\ncomm: {backend: gloo, timeout_s: -1}\n",
        "p.yaml", "");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string all = e.what();
    for (const char* part : {"model.device: expected cpu, cuda, cuda:N or auto; got 'gpu'",
                             "comm.backend: expected one of auto, mpi, nccl",
                             "comm.timeout_s:"})
      EXPECT_NE(all.find(part), std::string::npos) << part << "\n" << all;
  }
}

}  // namespace
}  // namespace sparc
