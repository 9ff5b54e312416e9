#include "config/pretrain_config.h"

#include <filesystem>

#include "config/yaml_reader.h"
#include "core/file.h"

namespace sparc {

using namespace yaml_reader;

PretrainConfig parse_pretrain_config(const std::string& yaml_text, const std::string& where,
                                     const std::string& base_dir,
                                     const std::vector<std::string>& overrides) {
  Problems problems(where);
  YAML::Node root = load_document(yaml_text, overrides, problems);
  PretrainConfig c;
  c.source_path = where;
  Section top(problems, root, "",
              {"seed", "out", "model", "tokenizer", "tokenizer_vocab", "data", "train", "comm"});
  top.read("seed", c.seed, std::uint64_t{0});
  top.require("out", c.out, "the model directory to write");
  top.read_choice("tokenizer", c.tokenizer, {"bytes", "sentencepiece"});
  top.read("tokenizer_vocab", c.tokenizer_vocab, 260);
  if (c.tokenizer == "bytes" && top.has("tokenizer_vocab"))
    top.fail("tokenizer_vocab", "applies to tokenizer: sentencepiece only (bytes has 259 tokens)");
  Section model(problems, top.get("model"), "model",
                {"dim", "layers", "heads", "kv_heads", "ffn", "max_seq_len", "device"});
  model.read("dim", c.dim, std::int64_t{1});
  model.read("layers", c.layers, std::int64_t{1});
  model.read("heads", c.heads, std::int64_t{1});
  model.read("kv_heads", c.kv_heads, std::int64_t{0});
  model.read("ffn", c.ffn, std::int64_t{1});
  model.read("max_seq_len", c.max_seq_len, std::int64_t{1});
  model.read_device("device", c.device);
  if (c.dim % c.heads != 0 || (c.dim / c.heads) % 2 != 0)
    model.fail("heads", "dim (" + std::to_string(c.dim) + ") must be heads (" +
                            std::to_string(c.heads) + ") times an even head size");
  if (c.kv_heads > 0 && c.heads % c.kv_heads != 0)
    model.fail("kv_heads", "must divide heads (" + std::to_string(c.heads) + ")");
  Section data(problems, top.get("data"), "data", {"text", "val_fraction"});
  YAML::Node text = data.get("text");
  if (text.IsScalar()) {
    c.text.push_back(text.Scalar());
  } else if (text.IsSequence() && text.size() > 0) {
    for (std::size_t k = 0; k < text.size(); ++k) {
      if (!text[k].IsScalar() || text[k].Scalar().empty())
        problems.add(text[k], "data.text[" + std::to_string(k) + "]",
                     "expected a file path, got " + describe(text[k]));
      else
        c.text.push_back(text[k].Scalar());
    }
  } else {
    data.fail("text", "required: a text file (one text per line) or a list of them");
  }
  data.read("val_fraction", c.val_fraction, kUnitHalfOpen);
  Section train(problems, top.get("train"), "train",
                {"steps", "batch_size", "seq_len", "lr", "weight_decay", "warmup_steps", "schedule",
                 "max_grad_norm", "dtype", "log_every", "eval_every"});
  train.read("steps", c.steps, std::int64_t{1});
  train.read("batch_size", c.batch_size, 1);
  train.read("seq_len", c.seq_len, 2);
  train.read("lr", c.lr, kPositive);
  train.read("weight_decay", c.weight_decay, kNonNegative);
  train.read("warmup_steps", c.warmup_steps, 0);
  train.read_choice("schedule", c.schedule, kSchedules);
  train.read("max_grad_norm", c.max_grad_norm, kNonNegative);
  train.read_choice("dtype", c.dtype, {"f32", "bf16"});
  train.read("log_every", c.log_every, 1);
  train.read("eval_every", c.eval_every, 0);
  if (c.seq_len > c.max_seq_len)
    train.fail("seq_len", "is " + std::to_string(c.seq_len) + ", above model.max_seq_len (" +
                              std::to_string(c.max_seq_len) + ")");
  Section comm(problems, top.get("comm"), "comm", {"backend", "timeout_s"});
  comm.read_choice("backend", c.backend, kCommBackendNames);
  comm.read("timeout_s", c.timeout_s, kNonNegative);
  problems.throw_if_any();
  auto resolve = [&](std::string& p, const std::string& key) {
    resolve_path(p, key, base_dir, problems);
  };
  resolve(c.out, "out");
  for (std::size_t k = 0; k < c.text.size(); ++k)
    resolve(c.text[k], "data.text[" + std::to_string(k) + "]");
  return c;
}

PretrainConfig load_pretrain_config(const std::string& path,
                                    const std::vector<std::string>& overrides) {
  const std::string text = read_text_file(path);
  const auto dir = std::filesystem::absolute(path).parent_path().lexically_normal();
  return parse_pretrain_config(text, path, dir.string(), overrides);
}

std::string to_yaml(const PretrainConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "seed" << YAML::Value << c.seed;
  out << YAML::Key << "tokenizer" << YAML::Value << YAML::DoubleQuoted << c.tokenizer;
  if (c.tokenizer != "bytes")
    out << YAML::Key << "tokenizer_vocab" << YAML::Value << c.tokenizer_vocab;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "dim" << YAML::Value << c.dim << YAML::Key << "layers" << YAML::Value
      << c.layers << YAML::Key << "heads" << YAML::Value << c.heads << YAML::Key << "kv_heads"
      << YAML::Value << c.kv_heads << YAML::Key << "ffn" << YAML::Value << c.ffn << YAML::Key
      << "max_seq_len" << YAML::Value << c.max_seq_len << YAML::EndMap;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "text" << YAML::Value << YAML::BeginSeq;
  for (const auto& t : c.text) out << YAML::DoubleQuoted << t;
  out << YAML::EndSeq << YAML::Key << "val_fraction" << YAML::Value << format_double(c.val_fraction)
      << YAML::EndMap;
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "steps" << YAML::Value << c.steps << YAML::Key << "batch_size"
      << YAML::Value << c.batch_size << YAML::Key << "seq_len" << YAML::Value << c.seq_len
      << YAML::Key << "lr" << YAML::Value << format_double(c.lr) << YAML::Key << "weight_decay"
      << YAML::Value << format_double(c.weight_decay) << YAML::Key << "warmup_steps"
      << YAML::Value << c.warmup_steps << YAML::Key << "schedule" << YAML::Value << c.schedule
      << YAML::Key << "max_grad_norm" << YAML::Value << format_double(c.max_grad_norm)
      << YAML::Key << "dtype" << YAML::Value << c.dtype << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace sparc
