// `sparc prepare-data`: builds the real task data and the pretraining corpus
// from the sources that scripts/setup.sh installs (sources.h). Output under
// <out>:
//
//   sentiment/{amazon,imdb,yelp}/{train,val,test}.jsonl, sentiment/stats.json
//   wordnet-wic/{train,val,test}.jsonl, wordnet-wic/stats.json
//   wordnet-hypernym/{train,val,test}.jsonl, wordnet-hypernym/stats.json
//   brown-genre/{train,val,test}.jsonl, brown-genre/stats.json
//   corpus/corpus.txt, corpus/stats.json
//
// Every byte is a function of the sources alone (fixed seed, no clock, no
// directory order), so two runs give identical files.
#pragma once

#include <string>
#include <vector>

#include "prepare/dataset.h"
#include "prepare/sources.h"

namespace sparc::prepare {

// The datasets, in the order `all` builds them.
std::vector<std::string> dataset_names();

// Builds one dataset in memory. Throws InputError for an unknown name or a
// missing source file.
Dataset build_dataset(const std::string& name, const SourcePaths& sources, const Progress& progress);
// Every dataset, reading each source once.
std::vector<Dataset> build_all_datasets(const SourcePaths& sources, const Progress& progress);

// `name`: a dataset, "corpus" (every dataset is built in memory; only the
// corpus is written) or "all" (every dataset and the corpus).
void prepare_data(const std::string& name, const SourcePaths& sources, const std::string& out,
                  const Progress& progress);

}  // namespace sparc::prepare
