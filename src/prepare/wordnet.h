// Tasks built from the WordNet 3.0 database (Debian's wordnet-base,
// /usr/share/wordnet): its data.* files hold one synset per line with its
// words, pointers and gloss; the gloss is a definition followed by quoted
// example sentences.
//
//   wordnet-wic       Word-in-Context: two example sentences that use the same
//                     lemma (same part of speech); label true when both come
//                     from the same synset. Balanced exactly in every split.
//   wordnet-hypernym  "Is a dog a kind of animal?": a common noun (first
//                     sense) against a category that is (true) or is not
//                     (false) one of its hypernyms 1-3 levels up; each noun
//                     gets one question of each label.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "prepare/dataset.h"

namespace sparc::prepare {

struct Synset {
  std::uint32_t offset = 0;
  char pos = 'n';                       // n, v, a, s (satellite adjective), r
  std::vector<std::string> words;       // as written, '_' turned into ' ', adjective markers removed
  std::vector<std::uint32_t> hypernyms; // '@' and '@i' pointers (same part of speech)
  std::string definition;               // the gloss before its examples
  std::vector<std::string> examples;    // the quoted example sentences of the gloss
};

struct IndexEntry {
  std::string lemma;                    // lower case, '_' turned into ' '
  std::vector<std::uint32_t> offsets;   // synsets in sense order (most frequent first)
  int tagged_senses = 0;                // senses seen in the semantically tagged corpora
};

struct WordNet {
  std::vector<Synset> synsets;          // in the order read
  std::vector<IndexEntry> noun_index;   // index.noun, in file order
  // (pos, offset) -> position in synsets; satellite adjectives keep their own 's'.
  std::unordered_map<std::uint64_t, std::size_t> by_offset;
  const Synset* find(char pos, std::uint32_t offset) const;
};

// One data.<pos> file. The licence header (lines starting with a space) is
// skipped; a malformed line is an InputError naming "path:line".
void parse_wordnet_data(std::string_view text, const std::string& path, WordNet& wn);
// index.noun (or any index.<pos>).
std::vector<IndexEntry> parse_wordnet_index(std::string_view text, const std::string& path);

// Splits a gloss into its definition and its quoted examples.
void split_gloss(std::string_view gloss, std::string& definition, std::vector<std::string>& examples);

// Reads data.{noun,verb,adj,adv} and index.noun from `dir`.
WordNet load_wordnet(const std::string& dir, const Progress& progress);

// Does `sentence` use `lemma` (or a regular inflection of its last word:
// -s, -es, -ed, -ing, ...) as whole words? Both are compared normalized.
bool uses_lemma(const std::string& sentence, const std::string& lemma);

Dataset build_wordnet_wic(const WordNet& wn, const Progress& progress);
Dataset build_wordnet_hypernym(const WordNet& wn, const Progress& progress);

// Definitions and example sentences of every synset: corpus material.
std::vector<std::string> wordnet_glosses(const WordNet& wn);

}  // namespace sparc::prepare
