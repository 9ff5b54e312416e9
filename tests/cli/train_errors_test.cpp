// `sparc train` on bad configs and data: exit 2 with a message naming the
// key path or file:line, before any model is loaded (the model path here
// does not even exist).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "cli/cli_test_util.h"
#include "test_util.h"

namespace {

using Result = sparc::test::CliResult;
Result run(const std::string& args) { return sparc::test::run_sparc(args); }

class TrainErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = sparc::test::make_temp_dir();
    std::ofstream(dir_ + "/train.jsonl") << R"({"text": "a b", "label": 0})" "\n"
                                         << R"({"text": "c d", "label": 1})" "\n";
    std::ofstream(dir_ + "/bad_label.jsonl") << R"({"text": "a b", "label": 0})" "\n"
                                             << R"({"text": "c d", "label": 7})" "\n";
  }
  // A valid config with `extra` appended at the top level and `task_extra` in the task.
  std::string config(const std::string& top, const std::string& train = "train.jsonl") {
    const std::string path = dir_ + "/run.yaml";
    std::ofstream(path) << "method: sparc\n"
                        << top << "model:\n  path: no-such-model.bin\n  tokenizer: bytes\n"
                        << "tasks:\n  - name: t\n    train: " << train
                        << "\n    test: train.jsonl\n    verbalizer: {\"0\": \"no\", \"1\": \"yes\"}\n";
    return path;
  }
  std::string dir_;
};

// Several problems may be listed, one per line.
void expect_exit2(const Result& r, const std::string& needle) {
  sparc::test::expect_input_error(r, needle, /*one_line=*/false);
}

TEST_F(TrainErrors, UnknownKeyWithSuggestion) {
  auto path = config("trian:\n  epochs: 2\n");
  expect_exit2(run("train --config " + path + " --run-dir " + dir_ + "/out"),
               "run.yaml:2: unknown key 'trian' (did you mean 'train'?)");
}

TEST_F(TrainErrors, WrongTypeNamesKeyPathAndLine) {
  auto path = config("train:\n  lr: fast\n");
  expect_exit2(run("train --config " + path + " --run-dir " + dir_ + "/out"),
               "run.yaml:3: train.lr: expected a number");
}

TEST_F(TrainErrors, BadSetOverride) {
  auto path = config("");
  expect_exit2(run("train --config " + path + " --set train.lr --run-dir " + dir_ + "/out"),
               "train.lr");
}

TEST_F(TrainErrors, MissingTaskFileIsNamed) {
  auto path = config("", "missing.jsonl");
  expect_exit2(run("train --config " + path + " --run-dir " + dir_ + "/out"), dir_ + "/missing.jsonl");
}

TEST_F(TrainErrors, LabelNotInVerbalizerNamesFileAndLine) {
  auto path = config("", "bad_label.jsonl");
  expect_exit2(run("train --config " + path + " --run-dir " + dir_ + "/out"),
               "bad_label.jsonl:2: label '7' is not in the verbalizer");
}

TEST_F(TrainErrors, MissingConfigFile) {
  expect_exit2(run("train --config " + dir_ + "/nope.yaml"), dir_ + "/nope.yaml");
}

}  // namespace
