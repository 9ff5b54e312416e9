// Malformed input of every kind the CLI reads from outside (configs, --set
// values, data lines, model and tokenizer files, the run directory), one
// defect per case against a baseline that is known to train: each must end
// with exit code 2 and a message naming the problem, never by a signal and
// never by hanging (run_sparc stops anything that runs past its limit).
// Needs no shared data: the model is a tiny llama2.c file written here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cli/cli_test_util.h"
#include "test_util.h"

namespace {

using sparc::test::CliResult;
using sparc::test::expect_input_error;
using sparc::test::read_bytes;
using sparc::test::run_sparc;
using sparc::test::write_bytes;

// A llama2.c legacy checkpoint with a shared classifier: dim 8, 1 layer,
// 2 heads, vocabulary 300 (the byte tokenizer's 259 ids fit), seq_len 256,
// small deterministic weights.
std::string tiny_llama2c() {
  const std::int32_t dim = 8, hidden = 16, layers = 1, heads = 2, kv = 2, vocab = 300, seq = 256;
  const std::int32_t hdr[7] = {dim, hidden, layers, heads, kv, vocab, seq};
  std::string bytes(reinterpret_cast<const char*>(hdr), sizeof hdr);
  const std::int64_t head = dim / heads;
  const std::int64_t floats = vocab * dim +
                              layers * (dim + 4 * dim * dim + dim + 3 * hidden * dim) + dim +
                              seq * head;
  for (std::int64_t i = 0; i < floats; ++i) {
    float v = 0.5f * float(std::sin(0.7 * double(i) + 0.3));
    bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  return bytes;
}

const char* const kTrainData =
    R"({"text": "the moon glows at night", "label": 1})" "\n"
    R"({"text": "a data node stores rows", "label": 0})" "\n"
    R"({"text": "light of the sun", "label": 1})" "\n"
    R"({"text": "disk and memory", "label": 0})" "\n";

// One case: `setup` writes whatever it needs into `dir` (which already
// holds model.bin, train.jsonl and run.yaml, the baseline) and returns the
// command line; `needle` must appear in the error.
struct Case {
  const char* name;
  const char* needle;
  std::function<std::string(const std::string& dir)> setup;
};

std::string baseline_config(const std::string& top = "", const std::string& task = "") {
  return "method: sparc\n" + top +
         "model: {path: model.bin, tokenizer: bytes}\n"
         "prompt: {length: 2}\n"
         "pca: {k: 4}\n"
         "train: {epochs: 1, batch_size: 2, max_length: 32, val_fraction: 0}\n"
         "tasks:\n"
         "  - name: t\n"
         "    train: train.jsonl\n"
         "    test: train.jsonl\n"
         "    verbalizer: {\"0\": \"data\", \"1\": \"light\"}\n" +
         task;
}

// `text` with its first `from` replaced by `to`.
std::string edit(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  if (at == std::string::npos) throw std::logic_error("no '" + from + "' in the test's text");
  return text.replace(at, from.size(), to);
}

std::string train(const std::string& dir, const std::string& extra = "") {
  return "train --config " + dir + "/run.yaml --run-dir " + dir + "/out" + extra;
}

// Writes run.yaml and returns the train command.
std::function<std::string(const std::string&)> config(const std::string& text,
                                                      const std::string& extra = "") {
  return [=](const std::string& dir) {
    write_bytes(dir + "/run.yaml", text);
    return train(dir, extra);
  };
}

// Writes train.jsonl (the baseline config reads it) and returns the train command.
std::function<std::string(const std::string&)> data(const std::string& text,
                                                    const std::string& top = "",
                                                    const std::string& format = "") {
  return [=](const std::string& dir) {
    write_bytes(dir + "/train.jsonl", text);
    std::string cfg = baseline_config(top);
    if (!format.empty()) cfg += "    format: " + format + "\n";
    write_bytes(dir + "/run.yaml", cfg);
    return train(dir);
  };
}

// Writes a file `name` and returns a command that reads it.
std::function<std::string(const std::string&)> file(const std::string& name,
                                                    const std::string& bytes,
                                                    const std::string& command) {
  return [=](const std::string& dir) {
    write_bytes(dir + "/" + name, bytes);
    std::string c = command;
    for (std::size_t at; (at = c.find("@")) != std::string::npos;) c.replace(at, 1, dir + "/" + name);
    return c;
  };
}

std::string le32(std::uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string le64(std::uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }

std::string safetensors(const std::string& header, std::size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

// A Hugging Face directory converted from model.bin (dir/hf), with `name`
// replaced by `bytes` (config.json left as converted when `bytes` is empty);
// returns a generate command on it.
std::function<std::string(const std::string&)> hf(const std::string& name,
                                                  const std::string& bytes) {
  return [=](const std::string& dir) {
    const CliResult conv = run_sparc("convert --model " + dir + "/model.bin --out " + dir + "/hf");
    if (conv.exit_code != 0) throw std::runtime_error("convert failed: " + conv.err);
    if (!bytes.empty() || name != "config.json") write_bytes(dir + "/hf/" + name, bytes);
    return "generate --tokenizer bytes --max-new-tokens 2 --model " + dir + "/hf";
  };
}

std::vector<Case> cases() {
  const std::string generate = "generate --tokenizer bytes --max-new-tokens 2 --model @";
  const std::string tokenize = "tokenize --tokenizer @ hello";
  std::vector<Case> c = {
      // ---- configs --------------------------------------------------------------
      {"YamlSyntaxError", "YAML syntax error", config("model: {path: [m\n")},
      {"TopLevelNotAMap", "expected a map of settings at the top level",
       config("- method: sparc\n")},
      {"UnknownKeyWithSuggestion", "unknown key 'trian' (did you mean 'train'?)",
       config(baseline_config("trian: {epochs: 1}\n"))},
      {"UnknownNestedKeyWithSuggestion",
       "unknown key 'train.epoch' (did you mean 'train.epochs'?)",
       config(edit(baseline_config(), "epochs", "epoch"))},
      {"WrongType", "train.lr: expected a number",
       config(edit(baseline_config(), "epochs: 1", "epochs: 1, lr: fast"))},
      {"OutOfRange", "reuse_threshold: expected a number in [0, 1]",
       config(baseline_config("reuse_threshold: 1.5\n"))},
      {"NegativeCount", "prompt.length: expected an integer >= 1",
       config(edit(baseline_config(), "length: 2", "length: -3"))},
      {"UnknownMethod", "(did you mean 'sparc'?)",
       config(edit(baseline_config(), "method: sparc", "method: sprac"))},
      {"ContradictoryPcaK", "pca.k: must be >= prompt.length",
       config(edit(baseline_config(), "k: 4", "k: 1"))},
      {"ContradictoryLambdaOrth", "train.lambda_orth: only the sparc methods use it",
       config(edit(edit(baseline_config(), "method: sparc", "method: prompt"), "epochs: 1",
                   "epochs: 1, lambda_orth: 0.5"))},
      {"DuplicateTaskName", "duplicate task name 't'",
       config(baseline_config("", "  - name: t\n    train: train.jsonl\n    test: train.jsonl\n"
                                  "    verbalizer: {\"0\": \"data\", \"1\": \"light\"}\n"))},
      {"NoTasks", "tasks: at least one task is required",
       config("model: {path: model.bin, tokenizer: bytes}\n")},
      {"OneClassVerbalizer", "expected at least 2 classes (label: word), got 1",
       config(edit(baseline_config(), ", \"1\": \"light\"", ""))},
      {"DuplicateKey", "duplicate key 'seed'", config(baseline_config("seed: 1\nseed: 2\n"))},
      {"EarlyStopWithoutValidation", "train.early_stop_patience: needs validation data",
       config(edit(baseline_config(), "val_fraction: 0", "val_fraction: 0, early_stop_patience: 2"))},
      {"UnknownDataFormat", "tasks[0].format", config(baseline_config() + "    format: recrod\n")},
      {"EmptyConfig", "tasks: at least one task is required", config("")},
      {"BinaryGarbageConfig", "run.yaml",
       config(std::string("\x7f" "ELF\x02\x01\x01\0\0\0\xff\xfe\x00\x01", 15))},
      {"ConfigIsADirectory", "is a directory",
       [](const std::string& dir) {
         std::filesystem::create_directory(dir + "/cfgdir");
         return "train --config " + dir + "/cfgdir --run-dir " + dir + "/out";
       }},
      {"MissingConfig", "nope.yaml: cannot open",
       [](const std::string& dir) { return "train --config " + dir + "/nope.yaml"; }},
      // ---- --set values -----------------------------------------------------------
      {"SetWithoutValue", "train.lr", config(baseline_config(), " --set train.lr")},
      {"SetWrongType", "(--set train.epochs=many): train.epochs: expected an integer >= 1",
       config(baseline_config(), " --set train.epochs=many")},
      {"SetUnknownKey", "(--set trian.lr=0.1): unknown key 'trian' (did you mean 'train'?)",
       config(baseline_config(), " --set trian.lr=0.1")},
      {"SetIndexOutOfRange", "tasks", config(baseline_config(), " --set tasks.5.name=x")},
      {"SetBadLoraTarget", "(did you mean 'q'?)",
       config(edit(baseline_config(), "method: sparc", "method: lora"),
              " --set 'lora.targets=[q, qq]'")},
      // ---- data lines -------------------------------------------------------------
      {"InvalidJsonLine", "train.jsonl:2: invalid JSON",
       data(R"({"text": "a", "label": 0})" "\n" R"({"text": "b", "label": )" "\n")},
      {"LineNotAnObject", "train.jsonl:1: expected a JSON object", data("[1, 2]\n")},
      {"MissingLabel", "train.jsonl:1: missing field 'label'", data(R"({"text": "a"})" "\n")},
      {"LabelOfWrongType", "train.jsonl:1: field 'label' must be a string, integer or boolean",
       data(R"({"text": "a", "label": 1.5})" "\n")},
      {"LabelNotInVerbalizer", "train.jsonl:2: label '7' is not in the verbalizer",
       data(R"({"text": "a", "label": 0})" "\n" R"({"text": "b", "label": 7})" "\n")},
      {"EmptyDataFile", "train.jsonl: holds no examples", data("\n  \n")},
      {"BoolqLabelNotBoolean", "train.jsonl:1: field 'label' must be a boolean",
       data(R"({"question": "q", "passage": "p", "label": "yes"})" "\n", "", "boolq")},
      {"SuperGlueMissingField", "train.jsonl:1: missing field 'hypothesis'",
       data(R"({"premise": "p", "label": "entailment"})" "\n", "", "rte")},
      {"InvalidUtf8Line", "train.jsonl:1: invalid JSON",
       data("{\"text\": \"\xff\xfe\", \"label\": 0}\n")},
      {"MissingDataFile", "missing.jsonl: cannot open",
       config(edit(baseline_config(), "train: train.jsonl", "train: missing.jsonl"))},
      {"DataPathIsADirectory", "is a directory, expected a file",
       [](const std::string& dir) {
         std::filesystem::create_directory(dir + "/datadir");
         write_bytes(dir + "/run.yaml", edit(baseline_config(), "train: train.jsonl", "train: datadir"));
         return train(dir);
       }},
      // ---- the run directory ----------------------------------------------------------
      {"RunDirThroughARegularFile", "(the run directory)",
       [](const std::string& dir) {
         write_bytes(dir + "/plainfile", "x");
         return "train --config " + dir + "/run.yaml --run-dir " + dir + "/plainfile/out";
       }},
      {"CheckpointDirThroughARegularFile", "plainfile/ckpt: cannot create directory: Not a directory (checkpoint.dir)",
       [](const std::string& dir) {
         write_bytes(dir + "/plainfile", "x");
         return train(dir, " --set checkpoint.dir=" + dir + "/plainfile/ckpt");
       }},
      {"UnknownOnWriteError", "checkpoint.on_write_error: expected one of stop, continue",
       config(baseline_config("checkpoint: {on_write_error: ignore}\n"))},
      {"RunDirIsARegularFile", "exists and is not a directory",
       [](const std::string& dir) {
         write_bytes(dir + "/plainfile", "x");
         return "train --config " + dir + "/run.yaml --run-dir " + dir + "/plainfile";
       }},
      // ---- model and tokenizer files ------------------------------------------------
      {"GarbageModelInTrain", "model.bin: bad llama2.c header",
       [](const std::string& dir) {
         write_bytes(dir + "/model.bin", std::string(64, '\x7f'));
         return train(dir);
       }},
      {"TruncatedModelInTrain", "truncated or not a llama2.c file",
       [](const std::string& dir) {
         const std::string m = read_bytes(dir + "/model.bin");
         write_bytes(dir + "/model.bin", m.substr(0, m.size() - 100));
         return train(dir);
       }},
      {"ModelFileTooShort", "too short for a llama2.c header", file("m.bin", "abc", generate)},
      {"Llama2cZeroHeads", "n_heads = 0",
       file("m.bin", le32(8) + le32(8) + le32(1) + le32(0) + le32(1) + le32(4) + le32(4), generate)},
      {"Llama2cMinVocab", "bad llama2.c header",  // -INT32_MIN cannot be negated
       file("m.bin", le32(8) + le32(8) + le32(1) + le32(2) + le32(2) + le32(0x80000000u) + le32(4),
            generate)},
      {"SafetensorsHeaderLengthBeyondFile", "exceeds the",
       hf("model.safetensors", le64(1000) + "{}")},
      {"SafetensorsTooShort", "too short for a safetensors file", hf("model.safetensors", "{}")},
      {"SafetensorsBadJsonHeader", "model.safetensors",
       hf("model.safetensors", safetensors("{\"w\": {\"dtype\": ", 0))},
      {"SafetensorsUnknownDtype", "F8",
       hf("model.safetensors",
          safetensors(R"({"w": {"dtype": "F8", "shape": [2], "data_offsets": [0, 2]}})", 2))},
      {"SafetensorsOffsetsBeyondData", "model.safetensors",
       hf("model.safetensors",
          safetensors(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8))},
      {"HfWrongTensorShape",
       "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [16, 8], expected [24, 8]",
       [](const std::string& dir) {
         // config.json claims a wider feed-forward layer than the tensors have.
         const std::string args = hf("config.json", "")(dir);
         write_bytes(dir + "/hf/config.json",
                     edit(read_bytes(dir + "/hf/config.json"), "\"intermediate_size\": 16",
                          "\"intermediate_size\": 24"));
         return args;
       }},
      {"HfConfigJsonMalformed", "config.json", hf("config.json", R"({"model_type": "llama", )")},
      {"TokenizerBinTruncated", "tok.bin",
       file("tok.bin", le32(8) + std::string("\0\0\0\0\x05\0\0\0ab", 10), tokenize)},
      {"TokenizerBinNegativeLength", "tok.bin",
       file("tok.bin", le32(8) + std::string("\0\0\0\0", 4) + le32(0xfffffff0u) + "x", tokenize)},
      {"TokenizerJsonMalformed", "malformed JSON", file("tokenizer.json", "{\"model\": ", tokenize)},
      {"TokenizerJsonNotBpe", "expected \"BPE\"",
       file("tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})", tokenize)},
      {"SentencePieceGarbage", "tok.model", file("tok.model", "\x0a\xff\xff\xff\xff\x0f", tokenize)},
      {"SentencePieceTruncatedPiece", "tok.model",
       file("tok.model", std::string("\x0a\x08\x0a\x06\xe2\x96\x81", 7), tokenize)},
      // ---- command line -----------------------------------------------------------
      {"NonNumericOption", "--max-new-tokens", file("m.bin", "abc",
                                                     generate + " --max-new-tokens lots")},
      {"UnknownSubcommandOption", "--bogus", config(baseline_config(), " --bogus")},
  };
  return c;
}

// Test names print the case, not its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class MalformedInput : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    dir_ = sparc::test::make_temp_dir();
    write_bytes(dir_ + "/model.bin", tiny_llama2c());
    write_bytes(dir_ + "/train.jsonl", kTrainData);
    write_bytes(dir_ + "/run.yaml", baseline_config());
  }
  std::string dir_;
};

TEST_P(MalformedInput, ExitsTwoNamingTheProblem) {
  const Case& c = GetParam();
  const std::string args = c.setup(dir_);
  SCOPED_TRACE("sparc " + args);
  const CliResult r = run_sparc("--log-level warn " + args, 120);
  expect_input_error(r, c.needle, /*one_line=*/false);
}

INSTANTIATE_TEST_SUITE_P(Cli, MalformedInput, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(info.param.name);
                         });

// The baseline every case above breaks in one place trains to the end: each
// failure is the defect's, not the baseline's.
TEST(MalformedInputBaseline, TrainsAndExitsZero) {
  const std::string dir = sparc::test::make_temp_dir();
  write_bytes(dir + "/model.bin", tiny_llama2c());
  write_bytes(dir + "/train.jsonl", kTrainData);
  write_bytes(dir + "/run.yaml", baseline_config());
  const CliResult r = run_sparc("--log-level warn " + train(dir), 300);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(sparc::test::path_exists(dir + "/out/results.json")) << r.err;
}

// Every problem a config has is listed at once, with those of the run
// directory, in one exit.
TEST(MalformedInputBaseline, ListsEveryProblemAtOnce) {
  const std::string dir = sparc::test::make_temp_dir();
  write_bytes(dir + "/plainfile", "x");
  write_bytes(dir + "/run.yaml", "method: sprac\ntrian: {}\nprompt: {length: 0}\n"
                                 "model: {path: model.bin}\ntasks: []\n");
  const CliResult r =
      run_sparc("train --config " + dir + "/run.yaml --run-dir " + dir + "/plainfile/out");
  for (const char* needle : {"method", "'trian'", "prompt.length", "tasks: at least one task",
                             "(the run directory)"})
    expect_input_error(r, needle, /*one_line=*/false);
}

// A checkpoint that would not fit on the run directory's file system is
// refused before the model is read: method full with a (sparse) model file
// of 15 TiB needs about three times that.
TEST(MalformedInputBaseline, NotEnoughDiskForACheckpoint) {
  const std::string dir = sparc::test::make_temp_dir();
  write_bytes(dir + "/train.jsonl", kTrainData);
  write_bytes(dir + "/model.bin", "");
  std::error_code ec;
  std::filesystem::resize_file(dir + "/model.bin", std::uintmax_t(15) << 40, ec);
  if (ec) GTEST_SKIP() << "this file system has no sparse 15 TiB files: " << ec.message();
  std::string cfg = baseline_config();
  write_bytes(dir + "/run.yaml", edit(cfg, "method: sparc", "method: full"));
  const CliResult r = run_sparc(train(dir));
  expect_input_error(r, "free on its file system, but a checkpoint of this run needs about");
  EXPECT_FALSE(sparc::test::path_exists(dir + "/out/config.yaml")) << "the run started: " << r.err;
}

// What `sparc eval` reads back from a finished run directory: a corrupt
// results.json or library metadata is an input error naming the file and,
// for JSON, where the parse stopped (was: an nlohmann exception, exit 1).
TEST(MalformedInputBaseline, CorruptRunDirectoryFilesInEval) {
  const std::string dir = sparc::test::make_temp_dir();
  write_bytes(dir + "/model.bin", tiny_llama2c());
  write_bytes(dir + "/train.jsonl", kTrainData);
  write_bytes(dir + "/run.yaml", baseline_config());
  const CliResult trained = run_sparc("--log-level warn " + train(dir), 300);
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  const std::string eval = "--log-level warn eval --run-dir " + dir + "/out";
  const CliResult fine = run_sparc(eval, 120);
  ASSERT_EQ(fine.exit_code, 0) << fine.err;
  EXPECT_NE(fine.out.find("\"matches_results\":true"), std::string::npos) << fine.out;

  const std::string results = dir + "/out/results.json";
  const std::string good = read_bytes(results);
  write_bytes(results, good.substr(0, good.size() / 2));
  expect_input_error(run_sparc(eval, 120), results + ": invalid JSON: parse error at line ");
  write_bytes(results, R"({"method": "sparc"})");
  expect_input_error(run_sparc(eval, 120), results + ": no 'accuracy_matrix' rows");
  write_bytes(results, good);

  const std::string library = dir + "/out/library.safetensors";
  write_bytes(library, safetensors(R"({"__metadata__": {"library": "[{\"name\": "}})", 0));
  expect_input_error(run_sparc(eval, 120),
                     library + ": 'library' metadata: invalid JSON: parse error at line 1, column");
  write_bytes(library, safetensors(R"({"__metadata__": {"library": "[{\"name\": 7}]"}})", 0));
  expect_input_error(run_sparc(eval, 120), library + ": 'library' metadata is not an array");
}

}  // namespace
