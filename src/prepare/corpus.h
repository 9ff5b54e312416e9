// The pretraining corpus: plain text from the training splits of every
// dataset and the other unlabelled text of their sources (WordNet
// definitions and examples, the training documents of the Brown Corpus),
// one sentence per line, deduplicated, and with every sentence that occurs in
// any validation or test split removed. Sentences are compared in their
// normalized form (text.h), so "Great phone!" in a test split also removes
// "great phone." from the corpus.
#pragma once

#include <string>
#include <vector>

#include "prepare/dataset.h"

namespace sparc::prepare {

struct Corpus {
  std::string text;  // one sentence per line
  Record stats;      // sentences, bytes, removed (held out), duplicates, per source
};

// Normalized sentences (and whole texts) of every validation and test record.
std::vector<std::string> heldout_sentences(const std::vector<Dataset>& datasets);

Corpus build_corpus(const std::vector<Dataset>& datasets, const Progress& progress);

// <out>/corpus/corpus.txt and <out>/corpus/stats.json.
void write_corpus(const Corpus& corpus, const std::string& out);

}  // namespace sparc::prepare
