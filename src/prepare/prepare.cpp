#include "prepare/prepare.h"

#include "core/error.h"
#include "core/file.h"
#include "prepare/brown.h"
#include "prepare/corpus.h"
#include "prepare/sentiment.h"
#include "prepare/wordnet.h"

namespace sparc::prepare {
namespace {

std::string name_list() {
  std::string s;
  for (const std::string& n : dataset_names()) s += n + ", ";
  return s + "corpus, all";
}

}  // namespace

std::vector<std::string> dataset_names() {
  return {"sentiment", "wordnet-wic", "wordnet-hypernym", "brown-genre"};
}

Dataset build_dataset(const std::string& name, const SourcePaths& sources, const Progress& progress) {
  if (name == "sentiment") return build_sentiment(sources.sentiment_package(), progress);
  if (name == "wordnet-wic") return build_wordnet_wic(load_wordnet(sources.wordnet, progress), progress);
  if (name == "wordnet-hypernym")
    return build_wordnet_hypernym(load_wordnet(sources.wordnet, progress), progress);
  if (name == "brown-genre") return build_brown_genre(sources.brown_package(), progress);
  throw InputError("prepare-data", "unknown dataset '" + name + "'; expected one of: " + name_list());
}

std::vector<Dataset> build_all_datasets(const SourcePaths& sources, const Progress& progress) {
  std::vector<Dataset> out;
  out.push_back(build_sentiment(sources.sentiment_package(), progress));
  const WordNet wn = load_wordnet(sources.wordnet, progress);
  out.push_back(build_wordnet_wic(wn, progress));
  out.push_back(build_wordnet_hypernym(wn, progress));
  out.push_back(build_brown_genre(sources.brown_package(), progress));
  return out;
}

void prepare_data(const std::string& name, const SourcePaths& sources, const std::string& out,
                  const Progress& progress) {
  if (name != "all" && name != "corpus") {
    const Dataset d = build_dataset(name, sources, progress);
    write_dataset(d, out);
    return;
  }
  const std::vector<Dataset> all = build_all_datasets(sources, progress);
  make_directories(out);
  if (name == "all")
    for (const Dataset& d : all) write_dataset(d, out);
  write_corpus(build_corpus(all, progress), out);
}

}  // namespace sparc::prepare
