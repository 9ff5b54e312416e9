#include "prepare/wordnet.h"

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file.h"
#include "prepare/sources.h"
#include "prepare/text.h"

namespace sparc::prepare {
namespace {

std::uint64_t synset_key(char pos, std::uint32_t offset) {
  return (std::uint64_t(static_cast<unsigned char>(pos)) << 32) | offset;
}

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::uint32_t parse_number(std::string_view s, int base, const std::string& where, const char* what) {
  if (s.empty()) throw InputError(where, std::string("missing ") + what);
  std::uint64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99;
    if (d >= base) throw InputError(where, std::string("bad ") + what + " '" + std::string(s) + "'");
    v = v * base + d;
    if (v > 0xffffffffULL) throw InputError(where, std::string(what) + " out of range");
  }
  return static_cast<std::uint32_t>(v);
}

std::string word_text(std::string_view w) {
  std::string s(w);
  // Adjective syntactic markers: "able(p)", "elect(ip)".
  if (auto paren = s.find('('); paren != std::string::npos && s.back() == ')') s.erase(paren);
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// A word of plain lower-case letters: the nouns and categories of the hypernym task.
bool plain_word(const std::string& w) {
  if (w.size() < 3) return false;
  return std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

const char* pos_name(char pos) {
  switch (pos) {
    case 'n': return "noun";
    case 'v': return "verb";
    case 'a': case 's': return "adjective";
    default: return "adverb";
  }
}

template <class T, class Key>
void sort_by(std::vector<T>& v, Key key) {
  std::stable_sort(v.begin(), v.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
}

}  // namespace

const Synset* WordNet::find(char pos, std::uint32_t offset) const {
  auto it = by_offset.find(synset_key(pos, offset));
  return it == by_offset.end() ? nullptr : &synsets[it->second];
}

void split_gloss(std::string_view gloss, std::string& definition, std::vector<std::string>& examples) {
  examples.clear();
  const std::size_t first = gloss.find('"');
  std::string def = collapse_spaces(gloss.substr(0, first));
  while (!def.empty() && (def.back() == ';' || def.back() == ' ')) def.pop_back();
  definition = def;
  if (first == std::string_view::npos) return;
  std::size_t pos = first;
  while (pos != std::string_view::npos) {
    const std::size_t close = gloss.find('"', pos + 1);
    if (close == std::string_view::npos) break;  // an unmatched quote: no example
    std::string ex = collapse_spaces(gloss.substr(pos + 1, close - pos - 1));
    if (!ex.empty()) examples.push_back(std::move(ex));
    pos = gloss.find('"', close + 1);
  }
}

void parse_wordnet_data(std::string_view text, const std::string& path, WordNet& wn) {
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == ' ') continue;  // the licence header
    const std::string where = path + ":" + std::to_string(line_no);
    const std::size_t bar = line.find(" | ");
    const std::string_view head = line.substr(0, bar);
    const auto f = split_words(head);
    auto field = [&](std::size_t i, const char* what) -> std::string_view {
      if (i >= f.size()) throw InputError(where, std::string("line ends before its ") + what);
      return f[i];
    };
    Synset s;
    s.offset = parse_number(field(0, "synset offset"), 10, where, "synset offset");
    const std::string_view type = field(2, "synset type");
    if (type.size() != 1 || std::string_view("nvasr").find(type[0]) == std::string_view::npos)
      throw InputError(where, "bad synset type '" + std::string(type) + "', expected n, v, a, s or r");
    s.pos = type[0];
    const std::uint32_t w_cnt = parse_number(field(3, "word count"), 16, where, "word count");
    std::size_t i = 4;
    for (std::uint32_t w = 0; w < w_cnt; ++w, i += 2) s.words.push_back(word_text(field(i, "words")));
    const std::uint32_t p_cnt = parse_number(field(i, "pointer count"), 10, where, "pointer count");
    ++i;
    for (std::uint32_t p = 0; p < p_cnt; ++p, i += 4) {
      const std::string_view symbol = field(i, "pointers");
      const std::uint32_t target = parse_number(field(i + 1, "pointers"), 10, where, "pointer offset");
      const std::string_view target_pos = field(i + 2, "pointers");
      field(i + 3, "pointers");
      if ((symbol == "@" || symbol == "@i") && target_pos.size() == 1 && target_pos[0] == s.pos)
        s.hypernyms.push_back(target);
    }
    if (bar != std::string_view::npos) split_gloss(line.substr(bar + 3), s.definition, s.examples);
    wn.by_offset[synset_key(s.pos, s.offset)] = wn.synsets.size();
    wn.synsets.push_back(std::move(s));
  }
}

std::vector<IndexEntry> parse_wordnet_index(std::string_view text, const std::string& path) {
  std::vector<IndexEntry> out;
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line[0] == ' ') continue;
    const std::string where = path + ":" + std::to_string(line_no);
    const auto f = split_words(line);
    // lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...
    if (f.size() < 4) throw InputError(where, "index line too short");
    const std::uint32_t synset_cnt = parse_number(f[2], 10, where, "synset count");
    const std::uint32_t p_cnt = parse_number(f[3], 10, where, "pointer count");
    const std::size_t tag_at = 4 + p_cnt + 1;
    if (f.size() != tag_at + 1 + synset_cnt)
      throw InputError(where, "expected " + std::to_string(synset_cnt) + " synset offsets");
    IndexEntry e;
    e.lemma = lower(word_text(f[0]));
    e.tagged_senses = static_cast<int>(parse_number(f[tag_at], 10, where, "tagged sense count"));
    for (std::size_t k = tag_at + 1; k < f.size(); ++k)
      e.offsets.push_back(parse_number(f[k], 10, where, "synset offset"));
    out.push_back(std::move(e));
  }
  return out;
}

WordNet load_wordnet(const std::string& dir, const Progress& progress) {
  WordNet wn;
  for (const char* pos : {"noun", "verb", "adj", "adv"}) {
    const std::string path = dir + "/data." + pos;
    require_source_file(path, "the WordNet database (Debian package wordnet-base)");
    parse_wordnet_data(read_text_file(path), path, wn);
  }
  const std::string index = dir + "/index.noun";
  require_source_file(index, "the WordNet noun index (Debian package wordnet-base)");
  wn.noun_index = parse_wordnet_index(read_text_file(index), index);
  if (progress)
    progress("wordnet: " + std::to_string(wn.synsets.size()) + " synsets, " +
             std::to_string(wn.noun_index.size()) + " nouns indexed (" + dir + ")");
  return wn;
}

bool uses_lemma(const std::string& sentence, const std::string& lemma) {
  const std::string norm_sentence = normalize_sentence(sentence);
  const auto tokens = split_words(norm_sentence);
  const std::string norm_lemma = normalize_sentence(lemma);
  const auto parts = split_words(norm_lemma);
  if (parts.empty() || tokens.size() < parts.size()) return false;
  const std::string last(parts.back());
  std::vector<std::string> forms = {last, last + "s", last + "es", last + "d", last + "ed", last + "ing"};
  const char tail = last.back();
  forms.push_back(last + tail + "ed");
  forms.push_back(last + tail + "ing");
  if (tail == 'e') forms.push_back(last.substr(0, last.size() - 1) + "ing");
  if (tail == 'y') {
    forms.push_back(last.substr(0, last.size() - 1) + "ies");
    forms.push_back(last.substr(0, last.size() - 1) + "ied");
  }
  for (std::size_t i = 0; i + parts.size() <= tokens.size(); ++i) {
    bool match = true;
    for (std::size_t k = 0; k + 1 < parts.size() && match; ++k) match = tokens[i + k] == parts[k];
    if (!match) continue;
    const std::string_view t = tokens[i + parts.size() - 1];
    if (std::find(forms.begin(), forms.end(), t) != forms.end()) return true;
  }
  return false;
}

std::vector<std::string> wordnet_glosses(const WordNet& wn) {
  std::vector<std::string> out;
  for (const Synset& s : wn.synsets) {
    if (!s.definition.empty()) out.push_back(s.definition);
    for (const std::string& e : s.examples) out.push_back(e);
  }
  return out;
}

// ---- Word in Context --------------------------------------------------------

namespace {

struct WicPair {
  std::string key;  // "noun:bank": the split unit
  std::string lemma, pos, s1, s2;
  bool same = false;
};

// Keeps in each split only pairs whose sentences no later split uses
// (train yields to val and test, val to test), then trims each split to the
// same number of true and false pairs.
void split_wic(std::vector<WicPair>& pairs, PreparedTask& task) {
  std::set<std::string> keys;
  for (const WicPair& p : pairs) keys.insert(p.key);
  std::vector<std::string> order(keys.begin(), keys.end());
  sort_by(order, [](const std::string& k) { return order_key("wordnet-wic/split", k); });
  const SplitSizes n = split_sizes(order.size());
  std::map<std::string, int> split_of;
  for (std::size_t i = 0; i < order.size(); ++i)
    split_of[order[i]] = i < n.train ? 0 : i < n.train + n.val ? 1 : 2;
  std::vector<WicPair> by_split[3];
  for (WicPair& p : pairs) by_split[split_of[p.key]].push_back(std::move(p));
  std::set<std::string> later;  // normalized sentences of later splits
  std::vector<Record>* outs[3] = {&task.train, &task.val, &task.test};
  for (int s = 2; s >= 0; --s) {
    std::vector<WicPair> kept[2];
    for (WicPair& p : by_split[s])
      if (!later.count(normalize_sentence(p.s1)) && !later.count(normalize_sentence(p.s2)))
        kept[p.same ? 1 : 0].push_back(std::move(p));
    const std::size_t each = std::min(kept[0].size(), kept[1].size());
    std::vector<WicPair> chosen;
    for (auto& group : kept) {
      sort_by(group, [](const WicPair& p) { return order_key("wordnet-wic/keep", p.key + "\n" + p.s1 + "\n" + p.s2); });
      group.resize(each);
      for (WicPair& p : group) chosen.push_back(std::move(p));
    }
    sort_by(chosen, [](const WicPair& p) { return order_key("wordnet-wic/order", p.key + "\n" + p.s1 + "\n" + p.s2); });
    for (const WicPair& p : chosen) {
      later.insert(normalize_sentence(p.s1));
      later.insert(normalize_sentence(p.s2));
      Record r;
      r["text"] = p.s1;
      r["text_b"] = p.s2;
      r["word"] = p.lemma;
      r["pos"] = p.pos;
      r["label"] = p.same;
      outs[s]->push_back(std::move(r));
    }
  }
}

}  // namespace

Dataset build_wordnet_wic(const WordNet& wn, const Progress& progress) {
  // (pos:lemma) -> synset -> its example sentences that use the lemma.
  std::map<std::string, std::map<std::uint64_t, std::vector<std::string>>> uses;
  std::map<std::string, std::string> lemma_of;
  for (const Synset& s : wn.synsets) {
    if (s.examples.empty()) continue;
    const char pos = s.pos == 's' ? 'a' : s.pos;
    std::set<std::string> seen;
    for (const std::string& w : s.words) {
      const std::string lemma = lower(w);
      if (!seen.insert(lemma).second) continue;
      const std::string key = std::string(pos_name(pos)) + ":" + lemma;
      for (const std::string& e : s.examples)
        if (uses_lemma(e, lemma)) {
          uses[key][synset_key(s.pos, s.offset)].push_back(e);
          lemma_of[key] = lemma;
        }
    }
  }
  std::vector<WicPair> pairs;
  for (const auto& [key, senses] : uses) {
    if (senses.size() < 2) continue;
    const std::string pos = key.substr(0, key.find(':'));
    std::vector<WicPair> same, different;
    for (auto a = senses.begin(); a != senses.end(); ++a) {
      const auto& ex = a->second;
      for (std::size_t i = 0; i + 1 < ex.size(); ++i)
        for (std::size_t j = i + 1; j < ex.size(); ++j)
          same.push_back({key, lemma_of[key], pos, ex[i], ex[j], true});
      for (auto b = std::next(a); b != senses.end(); ++b)
        for (const std::string& x : a->second)
          for (const std::string& y : b->second) different.push_back({key, lemma_of[key], pos, x, y, false});
    }
    auto usable = [](const WicPair& p) { return normalize_sentence(p.s1) != normalize_sentence(p.s2); };
    same.erase(std::remove_if(same.begin(), same.end(), [&](const WicPair& p) { return !usable(p); }), same.end());
    different.erase(std::remove_if(different.begin(), different.end(), [&](const WicPair& p) { return !usable(p); }),
                    different.end());
    // Up to two pairs of each label per lemma: many lemmas, none dominating.
    const std::size_t k = std::min<std::size_t>({2, same.size(), different.size()});
    for (auto* group : {&same, &different}) {
      sort_by(*group, [](const WicPair& p) { return order_key("wordnet-wic/pick", p.key + "\n" + p.s1 + "\n" + p.s2); });
      for (std::size_t i = 0; i < k; ++i) {
        WicPair p = (*group)[i];
        // Which sentence comes first is drawn too, so position says nothing.
        if (order_key("wordnet-wic/swap", p.s1 + "\n" + p.s2) & 1) std::swap(p.s1, p.s2);
        pairs.push_back(std::move(p));
      }
    }
  }
  Dataset d;
  d.name = "wordnet-wic";
  d.info = {{"name", "wordnet-wic"},
            {"source", "WordNet 3.0 example sentences (Debian package wordnet-base, /usr/share/wordnet)"},
            {"licence", "WordNet 3.0 licence (Princeton University; BSD-like, free to use, copy and "
                        "distribute with the copyright notice)"},
            {"labels", {{"true", "same sense"}, {"false", "different senses"}}}};
  PreparedTask task;
  task.path = "wordnet-wic";
  task.text_fields = {"text", "text_b"};
  const std::size_t candidates = pairs.size();
  split_wic(pairs, task);
  if (progress)
    progress("wordnet-wic: " + std::to_string(candidates) + " candidate pairs -> " +
             std::to_string(task.train.size()) + " train, " + std::to_string(task.val.size()) +
             " val, " + std::to_string(task.test.size()) + " test");
  d.tasks.push_back(std::move(task));
  d.unlabelled = wordnet_glosses(wn);
  return d;
}

// ---- Hypernym questions ------------------------------------------------------

namespace {

// Shortest distance of every noun synset to a root (a synset without hypernyms).
std::unordered_map<std::uint32_t, int> noun_depths(const WordNet& wn) {
  std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> children;
  std::deque<std::uint32_t> queue;
  std::unordered_map<std::uint32_t, int> depth;
  for (const Synset& s : wn.synsets) {
    if (s.pos != 'n') continue;
    if (s.hypernyms.empty()) {
      depth[s.offset] = 0;
      queue.push_back(s.offset);
    }
    for (std::uint32_t h : s.hypernyms) children[h].push_back(s.offset);
  }
  while (!queue.empty()) {
    const std::uint32_t u = queue.front();
    queue.pop_front();
    for (std::uint32_t c : children[u])
      if (!depth.count(c)) {
        depth[c] = depth[u] + 1;
        queue.push_back(c);
      }
  }
  return depth;
}

// Ancestors of a noun synset with their shortest distance (1 = direct hypernym).
std::map<std::uint32_t, int> ancestors(const WordNet& wn, std::uint32_t offset) {
  std::map<std::uint32_t, int> dist;
  std::deque<std::uint32_t> queue{offset};
  std::map<std::uint32_t, int> seen{{offset, 0}};
  while (!queue.empty()) {
    const std::uint32_t u = queue.front();
    queue.pop_front();
    const Synset* s = wn.find('n', u);
    if (!s) continue;
    for (std::uint32_t h : s->hypernyms)
      if (!seen.count(h) && wn.find('n', h)) {  // a dangling pointer leads nowhere
        seen[h] = seen[u] + 1;
        dist[h] = seen[h];
        queue.push_back(h);
      }
  }
  return dist;
}

std::string question(const std::string& word, const std::string& category) {
  const bool vowel = std::string_view("aeiou").find(word[0]) != std::string_view::npos;
  return std::string("Is ") + (vowel ? "an " : "a ") + word + " a kind of " + category + "?";
}

}  // namespace

Dataset build_wordnet_hypernym(const WordNet& wn, const Progress& progress) {
  constexpr int kMinCategoryDepth = 4;  // not "entity", "object", "whole", "abstraction"...
  constexpr int kMaxDistance = 3;
  const auto depth = noun_depths(wn);
  struct Item {
    std::string word, positive;
    std::set<std::string> excluded;  // every lemma above any sense of the word, and its synonyms
  };
  std::vector<Item> items;
  std::set<std::string> pool_set;
  for (const IndexEntry& e : wn.noun_index) {
    if (e.tagged_senses < 1 || !plain_word(e.lemma) || e.offsets.empty()) continue;
    Item item{e.lemma, "", {e.lemma}};
    for (std::uint32_t off : e.offsets) {
      const Synset* s = wn.find('n', off);
      if (!s) throw InputError("index.noun", "noun '" + e.lemma + "' points at a synset missing from data.noun");
      for (const std::string& w : s->words) item.excluded.insert(lower(w));
      for (const auto& [a, d] : ancestors(wn, off))
        for (const std::string& w : wn.find('n', a)->words) item.excluded.insert(lower(w));
    }
    // The category comes from the first (most frequent) sense.
    std::vector<std::string> candidates;
    for (const auto& [a, d] : ancestors(wn, e.offsets.front())) {
      auto it = depth.find(a);
      if (d > kMaxDistance || it == depth.end() || it->second < kMinCategoryDepth) continue;
      for (const std::string& w : wn.find('n', a)->words)
        if (plain_word(w) && w != e.lemma) candidates.push_back(w);
    }
    if (candidates.empty()) continue;
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    sort_by(candidates, [&](const std::string& c) { return order_key("wordnet-hypernym/positive/" + e.lemma, c); });
    item.positive = candidates.front();
    pool_set.insert(item.positive);
    items.push_back(std::move(item));
  }
  // False categories are drawn from the true ones, so a category's word alone
  // says nothing about the answer.
  const std::vector<std::string> pool(pool_set.begin(), pool_set.end());
  std::vector<Item*> order;
  for (Item& it : items) order.push_back(&it);
  sort_by(order, [](const Item* it) { return order_key("wordnet-hypernym/split", it->word); });
  const std::size_t caps[3] = {2000, 250, 500};  // nouns per split; two questions each
  const SplitSizes n = split_sizes(order.size());
  const std::size_t bounds[3] = {n.train, n.train + n.val, order.size()};
  PreparedTask task;
  task.path = "wordnet-hypernym";
  task.text_fields = {"text"};
  std::vector<Record>* outs[3] = {&task.train, &task.val, &task.test};
  std::size_t start = 0;
  for (int s = 0; s < 3; ++s) {
    std::size_t taken = 0;
    for (std::size_t i = start; i < bounds[s] && taken < caps[s]; ++i) {
      const Item& it = *order[i];
      std::string negative;
      for (std::uint64_t attempt = 0; attempt < 64 && negative.empty(); ++attempt) {
        const std::string& c =
            pool[order_key("wordnet-hypernym/negative/" + it.word, std::to_string(attempt)) % pool.size()];
        if (!it.excluded.count(c)) negative = c;
      }
      if (negative.empty()) continue;
      Record pos, neg;
      pos["text"] = question(it.word, it.positive);
      pos["word"] = it.word;
      pos["category"] = it.positive;
      pos["label"] = true;
      neg["text"] = question(it.word, negative);
      neg["word"] = it.word;
      neg["category"] = negative;
      neg["label"] = false;
      // The two questions of a noun, in a drawn order.
      const bool flip = order_key("wordnet-hypernym/flip", it.word) & 1;
      outs[s]->push_back(flip ? neg : pos);
      outs[s]->push_back(flip ? pos : neg);
      ++taken;
    }
    start = bounds[s];
  }
  Dataset d;
  d.name = "wordnet-hypernym";
  d.info = {{"name", "wordnet-hypernym"},
            {"source", "WordNet 3.0 noun hierarchy (Debian package wordnet-base, /usr/share/wordnet)"},
            {"licence", "WordNet 3.0 licence (Princeton University; BSD-like, free to use, copy and "
                        "distribute with the copyright notice)"},
            {"labels", {{"true", "the category is a hypernym"}, {"false", "it is not"}}},
            {"eligible_nouns", items.size()},
            {"categories", pool.size()}};
  if (progress)
    progress("wordnet-hypernym: " + std::to_string(items.size()) + " nouns with a category -> " +
             std::to_string(task.train.size()) + " train, " + std::to_string(task.val.size()) +
             " val, " + std::to_string(task.test.size()) + " test questions");
  d.tasks.push_back(std::move(task));
  return d;
}

}  // namespace sparc::prepare
