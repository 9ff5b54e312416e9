#include "prepare/corpus.h"

#include <unordered_set>

#include "core/file.h"
#include "prepare/text.h"

namespace sparc::prepare {

std::vector<std::string> heldout_sentences(const std::vector<Dataset>& datasets) {
  std::vector<std::string> out;
  for (const Dataset& d : datasets)
    for (const PreparedTask& t : d.tasks)
      for (const auto* split : {&t.val, &t.test})
        for (const Record& r : *split)
          for (const std::string& field : t.text_fields) {
            auto it = r.find(field);
            if (it == r.end() || !it->is_string()) continue;
            const std::string text = it->get<std::string>();
            out.push_back(normalize_sentence(text));
            for (const std::string& s : split_sentences(text)) out.push_back(normalize_sentence(s));
          }
  return out;
}

Corpus build_corpus(const std::vector<Dataset>& datasets, const Progress& progress) {
  const auto heldout_list = heldout_sentences(datasets);
  const std::unordered_set<std::string> heldout(heldout_list.begin(), heldout_list.end());
  std::unordered_set<std::string> seen;
  Corpus c;
  std::size_t removed = 0, duplicates = 0, lines = 0;
  Record sources = Record::object();
  auto add = [&](const std::string& text, std::size_t& kept) {
    for (const std::string& s : split_sentences(text)) {
      std::string norm = normalize_sentence(s);
      if (norm.empty()) continue;
      if (heldout.count(norm)) {
        ++removed;
        continue;
      }
      if (!seen.insert(std::move(norm)).second) {
        ++duplicates;
        continue;
      }
      c.text += s;
      c.text += '\n';
      ++kept;
      ++lines;
    }
  };
  for (const Dataset& d : datasets) {
    std::size_t from_train = 0, from_unlabelled = 0;
    for (const PreparedTask& t : d.tasks)
      for (const Record& r : t.train)
        for (const std::string& field : t.text_fields) {
          auto it = r.find(field);
          if (it != r.end() && it->is_string()) add(it->get<std::string>(), from_train);
        }
    for (const std::string& text : d.unlabelled) add(text, from_unlabelled);
    sources[d.name] = {{"train_split_sentences", from_train}, {"unlabelled_sentences", from_unlabelled}};
    if (progress)
      progress("corpus: " + d.name + ": " + std::to_string(from_train) + " sentences from training splits, " +
               std::to_string(from_unlabelled) + " from other text");
  }
  c.stats = {{"sentences", lines},
             {"bytes", c.text.size()},
             {"removed_heldout", removed},
             {"duplicates", duplicates},
             {"heldout_sentences", heldout.size()},
             {"sources", sources}};
  if (progress)
    progress("corpus: " + std::to_string(lines) + " sentences (" + std::to_string(c.text.size()) +
             " bytes); removed " + std::to_string(removed) + " held-out and " +
             std::to_string(duplicates) + " repeated sentences");
  return c;
}

void write_corpus(const Corpus& corpus, const std::string& out) {
  make_directories(out + "/corpus");
  write_file_atomic(out + "/corpus/corpus.txt", corpus.text);
  write_file_atomic(out + "/corpus/stats.json", corpus.stats.dump(2) + "\n");
}

}  // namespace sparc::prepare
