#include "prepare/dataset.h"

#include <cstdio>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/file.h"

namespace sparc::prepare {

std::string label_text(const Record& r) {
  const Record& v = r.at("label");
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

std::string record_line(const Record& r) {
  return r.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(tmp, errno_text("cannot create"));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) throw InputError(tmp, errno_text("write failed"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw InputError(path, errno_text("rename"));
}

Record dataset_stats(const Dataset& d) {
  Record stats = d.info;
  stats["tasks"] = Record::object();
  for (const PreparedTask& t : d.tasks) {
    Record task = Record::object();
    const std::pair<const char*, const std::vector<Record>*> splits[] = {
        {"train", &t.train}, {"val", &t.val}, {"test", &t.test}};
    for (const auto& [name, records] : splits) {
      std::map<std::string, std::size_t> labels;
      for (const Record& r : *records) ++labels[label_text(r)];
      Record counts = Record::object();
      for (const auto& [label, n] : labels) counts[label] = n;
      task[name] = {{"examples", records->size()}, {"labels", counts}};
    }
    stats["tasks"][t.path] = task;
  }
  stats["unlabelled_texts"] = d.unlabelled.size();
  return stats;
}

void write_dataset(const Dataset& d, const std::string& out) {
  for (const PreparedTask& t : d.tasks) {
    const std::string dir = out + "/" + t.path;
    make_directories(dir);
    const std::pair<const char*, const std::vector<Record>*> splits[] = {
        {"train", &t.train}, {"val", &t.val}, {"test", &t.test}};
    for (const auto& [name, records] : splits) {
      std::string text;
      for (const Record& r : *records) text += record_line(r) + "\n";
      write_file_atomic(dir + "/" + name + ".jsonl", text);
    }
  }
  make_directories(out + "/" + d.name);
  write_file_atomic(out + "/" + d.name + "/stats.json", dataset_stats(d).dump(2) + "\n");
}

}  // namespace sparc::prepare
