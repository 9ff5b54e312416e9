// The checks `sparc train` runs before any model is loaded.
#include "train/preflight.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test_util.h"

namespace {

using sparc::RunConfig;

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += p + "\n";
  return s;
}

// A config whose every file exists and is valid, in a fresh directory.
RunConfig valid_config(const std::string& dir) {
  write(dir + "/model.bin", std::string(100, 'm'));
  write(dir + "/train.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": 1}\n");
  RunConfig c;
  c.source_path = dir + "/run.yaml";
  c.model.path = dir + "/model.bin";
  c.model.tokenizer = "bytes";
  sparc::TaskSpec t;
  t.name = "t";
  t.train = t.test = dir + "/train.jsonl";
  t.verbalizer = {{"0", "no"}, {"1", "yes"}};
  c.tasks = {t};
  return c;
}

TEST(Preflight, ValidInputsHaveNoProblems) {
  const std::string dir = sparc::test::make_temp_dir();
  EXPECT_EQ(joined(sparc::check_run_inputs(valid_config(dir))), "");
}

TEST(Preflight, EveryMissingFileIsListedOnceWithItsKeys) {
  const std::string dir = sparc::test::make_temp_dir();
  RunConfig c = valid_config(dir);
  c.model.path = dir + "/no-model.bin";
  c.model.tokenizer = dir + "/no-tokenizer.json";
  c.tasks[0].train = c.tasks[0].test = dir + "/gone.jsonl";
  c.tasks[0].validation = dir;  // a directory
  const auto p = sparc::check_run_inputs(c);
  ASSERT_EQ(p.size(), 4u) << joined(p);
  EXPECT_NE(p[0].find(dir + "/no-model.bin: model not found (model.path"), std::string::npos);
  EXPECT_NE(p[1].find(dir + "/no-tokenizer.json: tokenizer not found"), std::string::npos);
  EXPECT_NE(p[2].find(dir + "/gone.jsonl: cannot open"), std::string::npos) << p[2];
  EXPECT_NE(p[2].find("(tasks[0].train, tasks[0].test)"), std::string::npos) << p[2];
  EXPECT_NE(p[3].find("is a directory, expected a file (tasks[0].validation)"), std::string::npos)
      << p[3];
}

TEST(Preflight, BadLinesAndUnknownLabelsNameFileAndLine) {
  const std::string dir = sparc::test::make_temp_dir();
  RunConfig c = valid_config(dir);
  write(dir + "/bad.jsonl", "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\", \"label\": 2}\n");
  write(dir + "/broken.jsonl", "{\"text\": \"a\", \"label\": 0}\n\n{\"text\": \n");
  c.tasks[0].train = dir + "/bad.jsonl";
  c.tasks[0].test = dir + "/broken.jsonl";
  const auto p = sparc::check_run_inputs(c);
  ASSERT_EQ(p.size(), 2u) << joined(p);
  EXPECT_NE(p[0].find(dir + "/bad.jsonl:2: label '2' is not in the verbalizer of tasks[0] "
                            "(expected one of: 0, 1)"),
            std::string::npos)
      << p[0];
  EXPECT_NE(p[1].find(dir + "/broken.jsonl:3: invalid JSON"), std::string::npos) << p[1];
}

TEST(Preflight, CheckpointEstimateScalesWithTheModelOnlyForFullTraining) {
  const std::string dir = sparc::test::make_temp_dir();
  RunConfig c = valid_config(dir);
  std::filesystem::resize_file(c.model.path, 100u << 20);  // 100 MiB, sparse
  EXPECT_EQ(sparc::checkpoint_bytes_estimate(c), 16u << 20);
  c.method = sparc::MethodId::kFull;
  EXPECT_EQ(sparc::checkpoint_bytes_estimate(c), 300u << 20);
  // A Hugging Face directory: its weight files count, nothing else.
  const std::string hf = dir + "/hf";
  std::filesystem::create_directory(hf);
  write(hf + "/config.json", std::string(50u << 20, ' '));
  std::ofstream(hf + "/model-00001.safetensors").close();
  std::filesystem::resize_file(hf + "/model-00001.safetensors", 10u << 20);
  std::ofstream(hf + "/model-00002.safetensors").close();
  std::filesystem::resize_file(hf + "/model-00002.safetensors", 20u << 20);
  c.model.path = hf;
  EXPECT_EQ(sparc::checkpoint_bytes_estimate(c), 90u << 20);
}

TEST(Preflight, RunDirectoryIsCreatedAndLeftClean) {
  const std::string dir = sparc::test::make_temp_dir() + "/a/b/run";
  EXPECT_EQ(joined(sparc::check_run_directory(dir, 1)), "");
  ASSERT_TRUE(std::filesystem::is_directory(dir));
  EXPECT_TRUE(std::filesystem::is_empty(dir)) << "the write probe was left behind";
}

TEST(Preflight, RunDirectoryThroughARegularFileIsRefused) {
  // Root may write anywhere permission bits allow nobody to: a path through
  // a regular file fails for root too.
  const std::string base = sparc::test::make_temp_dir();
  write(base + "/file", "x");
  const auto below = sparc::check_run_directory(base + "/file/run", 0);
  ASSERT_EQ(below.size(), 1u);
  EXPECT_NE(below[0].find("(the run directory)"), std::string::npos) << below[0];
  EXPECT_NE(below[0].find(base + "/file"), std::string::npos) << below[0];
  const auto itself = sparc::check_run_directory(base + "/file", 0);
  ASSERT_EQ(itself.size(), 1u);
  EXPECT_NE(itself[0].find("exists and is not a directory"), std::string::npos) << itself[0];
}

TEST(Preflight, NotEnoughFreeSpaceIsReported) {
  const std::string dir = sparc::test::make_temp_dir();
  const auto p = sparc::check_run_directory(dir, std::uint64_t(1) << 62);  // 4 EiB
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NE(p[0].find("free on its file system, but a checkpoint of this run needs about "
                      "4398046511104 MiB"),
            std::string::npos)
      << p[0];
}

}  // namespace
