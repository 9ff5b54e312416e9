// `sparc train` on bad configs and data: exit 2 with a message naming the
// key path or file:line, before any model is loaded (the model path here
// does not even exist).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "test_util.h"

namespace {

struct Result {
  int exit_code = -1;
  std::string err;
};

Result run(const std::string& args) {
  const std::string dir = sparc::test::make_temp_dir();
  const std::string cmd = std::string(SPARC_BINARY) + " " + args + " >/dev/null 2>" + dir + "/err";
  int status = std::system(cmd.c_str());
  Result r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  std::ifstream e(dir + "/err");
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

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

void expect_exit2(const Result& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("frame #"), std::string::npos) << r.err;
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
