// A prepared dataset: one or more tasks, each with deterministic train / val /
// test splits of records in the generic JSONL form that `sparc train` reads
// (format: generic; "text", optional "text_b", other string fields, "label"),
// plus the unlabelled text of its source that the pretraining corpus may use.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sparc::prepare {

using Record = nlohmann::ordered_json;  // keys stay in the order they were set

struct PreparedTask {
  std::string path;                      // directory under the output root: "sentiment/amazon"
  std::vector<std::string> text_fields;  // the record fields that hold input text
  std::vector<Record> train, val, test;
};

struct Dataset {
  std::string name;                    // "sentiment", "wordnet-wic", ...
  Record info;                         // source, version, licence: copied into stats.json
  std::vector<PreparedTask> tasks;
  std::vector<std::string> unlabelled;  // other text of the source, corpus material only
};

// Progress lines for long work ("wordnet: 117659 synsets read").
using Progress = std::function<void(const std::string&)>;

// A record's label as the training reader sees it ("0", "true", "fiction").
std::string label_text(const Record& r);

// One JSON line (no trailing newline), UTF-8 kept as it is.
std::string record_line(const Record& r);

// Writes <out>/<task path>/{train,val,test}.jsonl for every task and
// <out>/<name>/stats.json (example and label counts per split). Files are
// written to a temporary name and renamed. Throws InputError naming a path
// that cannot be written.
void write_dataset(const Dataset& d, const std::string& out);

// The stats.json content: info plus counts per task and split.
Record dataset_stats(const Dataset& d);

// Writes `content` to `path` through `path.tmp` and a rename.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace sparc::prepare
