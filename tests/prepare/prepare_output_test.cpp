// Properties of the whole output of `sparc prepare-data all`: two runs are
// byte-identical, and no sentence of any validation or test split appears in
// the pretraining corpus. Run on the hand-written fixtures always, and on the
// real sources (scripts/setup.sh) when they are present.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "core/file.h"
#include "prepare/prepare.h"
#include "test_util.h"

namespace sparc::prepare {
namespace {

namespace fs = std::filesystem;
const std::string kFixtures = std::string(SPARC_SOURCE_DIR) + "/tests/prepare/fixtures/sources";

std::map<std::string, std::string> files_under(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_text_file(e.path().string());
  return out;
}

// The sources scripts/setup.sh fetches, or the reason they cannot be used.
std::string real_sources_missing(const SourcePaths& p) {
  for (const std::string& f : {p.sentiment_package() + "/test/fixtures/yelp.json",
                               p.brown_package() + "/ca01", p.wordnet + "/data.noun"})
    if (!file_exists(f)) return f + " is absent (scripts/setup.sh fetches it)";
  return "";
}

// The real output, prepared once per test binary.
const std::string& real_output() {
  static const std::string dir = [] {
    const std::string out = test::make_temp_dir();
    prepare_data("all", resolve_sources(""), out, nullptr);
    return out;
  }();
  return dir;
}

// The comparison form, written independently of the library's: lower-case
// ASCII letters and digits, UTF-8 bytes kept, everything else a separator.
std::string comparable(const std::string& s) {
  std::string spaced;
  for (unsigned char c : s)
    spaced += std::isalnum(c) ? static_cast<char>(std::tolower(c)) : c >= 0x80 ? static_cast<char>(c) : ' ';
  std::istringstream words(spaced);
  std::string w, out;
  while (words >> w) out += (out.empty() ? "" : " ") + w;
  return out;
}

// Sentences, by the rule docs/data.md states: a cut after . ! or ? (with any
// further terminators, quotes or brackets) where whitespace follows, and at
// line breaks.
std::vector<std::string> sentences(const std::string& text) {
  static const std::regex boundary(R"([.!?][.!?'")\]]*(?=\s)|[\r\n])");
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::sregex_iterator it(text.begin(), text.end(), boundary), end; it != end; ++it) {
    const std::size_t stop = it->position() + it->length();
    out.push_back(text.substr(start, stop - start));
    start = stop;
  }
  out.push_back(text.substr(start));
  return out;
}

struct Overlap {
  std::size_t heldout = 0, corpus = 0;
  std::vector<std::string> shared;
};

// Every validation and test text field (whole and sentence by sentence)
// against every corpus sentence.
Overlap overlap(const std::string& out) {
  std::set<std::string> heldout;
  for (const auto& [path, bytes] : files_under(out)) {
    if (path.size() < 6 || (path.find("/val.jsonl") == std::string::npos &&
                            path.find("/test.jsonl") == std::string::npos))
      continue;
    std::istringstream lines(bytes);
    for (std::string line; std::getline(lines, line);) {
      const auto record = nlohmann::json::parse(line);
      for (const char* field : {"text", "text_b"}) {
        if (!record.contains(field)) continue;
        const std::string text = record[field];
        heldout.insert(comparable(text));
        for (const std::string& s : sentences(text)) heldout.insert(comparable(s));
      }
    }
  }
  heldout.erase("");
  Overlap o;
  o.heldout = heldout.size();
  std::istringstream corpus(read_text_file(out + "/corpus/corpus.txt"));
  for (std::string line; std::getline(corpus, line);) {
    ++o.corpus;
    std::vector<std::string> pieces = sentences(line);
    pieces.push_back(line);
    if (std::any_of(pieces.begin(), pieces.end(), [&](const std::string& s) { return heldout.count(comparable(s)) > 0; }))
      o.shared.push_back(line);
  }
  return o;
}

std::string first_few(const std::vector<std::string>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size() && i < 5; ++i) s += "\n  " + v[i];
  return s;
}

TEST(PrepareOutput, TwoRunsAreByteIdenticalOnFixtures) {
  const std::string a = test::make_temp_dir(), b = test::make_temp_dir();
  prepare_data("all", resolve_sources(kFixtures), a, nullptr);
  prepare_data("all", resolve_sources(kFixtures), b, nullptr);
  const auto fa = files_under(a), fb = files_under(b);
  EXPECT_EQ(fa.size(), 6u * 3u + 4u + 2u);  // 6 tasks x 3 splits, 4 stats.json, corpus + its stats
  EXPECT_TRUE(fa == fb);
}

TEST(PrepareOutput, CorpusHoldsNoHeldOutSentenceOnFixtures) {
  const std::string out = test::make_temp_dir();
  prepare_data("all", resolve_sources(kFixtures), out, nullptr);
  const Overlap o = overlap(out);
  EXPECT_GT(o.heldout, 10u);
  EXPECT_GT(o.corpus, 50u);
  EXPECT_TRUE(o.shared.empty()) << o.shared.size() << " corpus lines are held-out text:" << first_few(o.shared);
  // The check has something to catch: the WiC test sentences are WordNet
  // examples, which the glosses (corpus material) contain.
  const auto stats = nlohmann::json::parse(read_text_file(out + "/corpus/stats.json"));
  EXPECT_GT(stats["removed_heldout"].get<int>(), 0);
  // Training text is kept: a sentence of a training split is in the corpus.
  std::ifstream train(out + "/sentiment/yelp/train.jsonl");
  std::string first;
  std::getline(train, first);
  const std::string text = nlohmann::json::parse(first)["text"];
  EXPECT_NE(read_text_file(out + "/corpus/corpus.txt").find(text + "\n"), std::string::npos) << text;
}

TEST(PrepareOutput, TwoRunsAreByteIdenticalOnRealSources) {
  const SourcePaths p = resolve_sources("");
  if (const std::string why = real_sources_missing(p); !why.empty()) GTEST_SKIP() << why;
  const std::string again = test::make_temp_dir();
  prepare_data("all", p, again, nullptr);
  const auto fa = files_under(real_output()), fb = files_under(again);
  EXPECT_EQ(fa.size(), 6u * 3u + 4u + 2u);
  EXPECT_TRUE(fa == fb);
}

TEST(PrepareOutput, CorpusHoldsNoHeldOutSentenceOnRealSources) {
  const SourcePaths p = resolve_sources("");
  if (const std::string why = real_sources_missing(p); !why.empty()) GTEST_SKIP() << why;
  const Overlap o = overlap(real_output());
  EXPECT_GT(o.heldout, 5000u);
  EXPECT_GT(o.corpus, 100000u);
  EXPECT_TRUE(o.shared.empty()) << o.shared.size() << " corpus lines are held-out text:" << first_few(o.shared);
}

TEST(PrepareOutput, RealSplitsAreBalanced) {
  const SourcePaths p = resolve_sources("");
  if (const std::string why = real_sources_missing(p); !why.empty()) GTEST_SKIP() << why;
  for (const char* task : {"wordnet-wic", "wordnet-hypernym", "brown-genre"})
    for (const char* split : {"train", "val", "test"}) {
      std::map<std::string, int> counts;
      std::istringstream lines(read_text_file(real_output() + "/" + task + "/" + split + ".jsonl"));
      for (std::string line; std::getline(lines, line);) ++counts[nlohmann::json::parse(line)["label"].dump()];
      ASSERT_EQ(counts.size(), 2u) << task << " " << split;
      EXPECT_EQ(counts.begin()->second, counts.rbegin()->second) << task << " " << split;
      EXPECT_GE(counts.begin()->second, split == std::string("val") ? 100 : 300) << task << " " << split;
    }
}

}  // namespace
}  // namespace sparc::prepare
