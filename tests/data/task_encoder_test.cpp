#include "data/task_encoder.h"

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/byte_tokenizer.h"
#include "tokenizer/llama2c_tokenizer.h"

namespace sparc {
namespace {

using Ids = std::vector<std::int32_t>;
using Verbalizer = std::vector<std::pair<std::string, std::string>>;

const char* const kRealTokenizer = "models/aidreams260K/tokenizer.bin";

// ByteTokenizer ids of `text`, written out independently of the encoder.
Ids bytes(const std::string& text) {
  Ids ids;
  for (unsigned char c : text) ids.push_back(c + ByteTokenizer::kFirstByte);
  return ids;
}

Ids concat(Ids a, const Ids& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

template <class F>
std::string error_text(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an InputError";
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

const Verbalizer kYesNo = {{"true", "yes"}, {"false", "no"}};

Example boolq(const std::string& question, const std::string& passage, const std::string& label = "true") {
  return {{{"question", question}, {"passage", passage}}, label, "val.jsonl:4"};
}

TEST(TaskEncoder, RendersTemplateAndIds) {
  ByteTokenizer tok;
  // The template uses question before passage; the map holds them the other way round.
  TaskEncoder enc(tok, "Q: {question}\nP: {passage}\nA:", kYesNo, "passage", 512, "tasks[0]");
  EXPECT_EQ(enc.num_classes(), 2);
  EXPECT_EQ(enc.label_token_ids(), (Ids{'y' + 3, 'n' + 3}));
  EXPECT_EQ(enc.fields(), (std::vector<std::string>{"question", "passage"}));

  const Example ex = boolq("is it?", "It is.", "false");
  EXPECT_EQ(enc.render(ex), "Q: is it?\nP: It is.\nA:");
  const EncodedExample e = enc.encode(ex);
  EXPECT_EQ(e.ids, concat({ByteTokenizer::kBos}, bytes("Q: is it?\nP: It is.\nA:")));
  EXPECT_EQ(e.label, 1);
  EXPECT_EQ(e.input_ids, concat(bytes("is it?"), bytes("It is.")));
}

TEST(TaskEncoder, LiteralBracesAndRepeatedFields) {
  ByteTokenizer tok;
  TaskEncoder enc(tok, "{{x}} {text} }}{text}{{", {{"0", "a"}, {"1", "b"}}, "", 64, "tasks[1]");
  const Example ex{{{"text", "hi"}, {"unused", "zzz"}}, "1", "d.jsonl:1"};
  EXPECT_EQ(enc.render(ex), "{x} hi }hi{");
  const EncodedExample e = enc.encode(ex);
  EXPECT_EQ(e.label, 1);
  // A field the template repeats enters the PCA input once; unused fields never.
  EXPECT_EQ(e.input_ids, bytes("hi"));
}

TEST(TaskEncoder, BadTemplates) {
  ByteTokenizer tok;
  auto error = [&](const std::string& tmpl) {
    return error_text([&] { TaskEncoder(tok, tmpl, kYesNo, "", 64, "tasks[1]"); });
  };
  EXPECT_TRUE(contains(error("Q: {question"), "tasks[1].template: unclosed '{' at offset 3")) << error("Q: {question");
  EXPECT_TRUE(contains(error("Q: question}"), "tasks[1].template: unmatched '}' at offset 11"));
  EXPECT_TRUE(contains(error("Q: {} A:"), "tasks[1].template: bad placeholder '{}'"));
  EXPECT_TRUE(contains(error("Q: {a{b} A:"), "tasks[1].template: bad placeholder '{a{b}'"));
  EXPECT_TRUE(contains(error("no fields {{here}}"), "tasks[1].template: uses no {field}"));
  EXPECT_TRUE(contains(
      error_text([&] { TaskEncoder(tok, "{question}", kYesNo, "passage", 64, "tasks[1]"); }),
      "tasks[1].truncate_field: 'passage' is not a field of the template"));
  EXPECT_TRUE(contains(error_text([&] { TaskEncoder(tok, "{question}", kYesNo, "", 0, "tasks[1]"); }),
                       "tasks[1].max_length: is 0"));
}

TEST(TaskEncoder, ExampleErrors) {
  ByteTokenizer tok;
  TaskEncoder enc(tok, "{question} {passage}", kYesNo, "", 64, "tasks[0]");
  EXPECT_EQ(error_text([&] { enc.encode(boolq("q", "p", "maybe")); }),
            "val.jsonl:4: label 'maybe' is not in the verbalizer (expected one of: 'true', 'false')");
  EXPECT_EQ(error_text([&] { enc.encode(boolq("q", "p", "")); }), "val.jsonl:4: example has no label");
  const Example no_passage{{{"question", "q"}, {"text", "t"}}, "true", "val.jsonl:9"};
  EXPECT_EQ(error_text([&] { enc.encode(no_passage); }),
            "val.jsonl:9: template field 'passage' is not in this example, which has 'question', 'text'");
  EXPECT_TRUE(contains(error_text([&] { enc.render(no_passage); }), "val.jsonl:9: template field 'passage'"));
}

TEST(TaskEncoder, TruncatesOnlyTheChosenField) {
  ByteTokenizer tok;
  TaskEncoder enc(tok, "Q: {question} P: {passage} A:", kYesNo, "passage", 20, "tasks[0]");
  // BOS + "Q: why? P: " (11) + passage (10) + " A:" (3) = 25 tokens; 20 leave 5 passage bytes.
  const EncodedExample e = enc.encode(boolq("why?", "abcdefghij"));
  EXPECT_EQ(e.ids, concat({ByteTokenizer::kBos}, bytes("Q: why? P: abcde A:")));
  EXPECT_EQ(e.ids.size(), 20u);
  EXPECT_EQ(e.input_ids, concat(bytes("why?"), bytes("abcde")));

  // Exactly max_length: left alone.
  TaskEncoder exact(tok, "Q: {question} P: {passage} A:", kYesNo, "passage", 25, "tasks[0]");
  EXPECT_EQ(exact.encode(boolq("why?", "abcdefghij")).ids,
            concat({ByteTokenizer::kBos}, bytes("Q: why? P: abcdefghij A:")));

  // The question is never cut, even when it is the longer field: BOS + "Q: why
  // is it so? P: " (20) + " A:" (3) = 24, so 26 leave 2 passage bytes.
  TaskEncoder enc26(tok, "Q: {question} P: {passage} A:", kYesNo, "passage", 26, "tasks[0]");
  const EncodedExample long_q = enc26.encode(boolq("why is it so?", "abcdefghij"));
  EXPECT_EQ(long_q.ids, concat({ByteTokenizer::kBos}, bytes("Q: why is it so? P: ab A:")));
}

TEST(TaskEncoder, TruncatesTheLongestFieldByDefault) {
  ByteTokenizer tok;
  TaskEncoder enc(tok, "{question}|{passage}", kYesNo, "", 12, "tasks[0]");
  // BOS + "why is it so?" (13) + "|" + "abc" (3) = 18; the question is longest: keep 7 bytes.
  EXPECT_EQ(enc.encode(boolq("why is it so?", "abc")).ids,
            concat({ByteTokenizer::kBos}, bytes("why is |abc")));
  // BOS + "ab|" = 4: the passage (14 bytes, now longest) keeps 8.
  EXPECT_EQ(enc.encode(boolq("ab", "a passage text")).ids,
            concat({ByteTokenizer::kBos}, bytes("ab|a passag")));
}

TEST(TaskEncoder, CutNeverSplitsACharacter) {
  ByteTokenizer tok;
  TaskEncoder enc(tok, "{question}:{passage}", kYesNo, "passage", 8, "tasks[0]");
  // "é" is 2 bytes. BOS + "q:" = 3, so 5 bytes remain: two whole "é" and half of one.
  const EncodedExample e = enc.encode(boolq("q", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"));
  EXPECT_EQ(e.ids, concat({ByteTokenizer::kBos}, bytes("q:\xC3\xA9\xC3\xA9")));
  EXPECT_EQ(e.ids.size(), 7u);
}

TEST(TaskEncoder, TooLongWithoutTheField) {
  ByteTokenizer tok;
  TaskEncoder enc(tok, "Q: {question} P: {passage} A:", kYesNo, "passage", 10, "tasks[0]");
  // Without the passage: BOS + "Q: why? P:  A:" = 15 tokens.
  EXPECT_EQ(error_text([&] { enc.encode(boolq("why?", "abcdefghij")); }),
            "val.jsonl:4: cannot fit max_length 10: the text without field 'passage' already takes 15 "
            "tokens");
}

TEST(TaskEncoder, VerbalizerErrors) {
  ByteTokenizer tok;
  auto error = [&](const Verbalizer& v) {
    return error_text([&] { TaskEncoder(tok, "{text}", v, "", 64, "tasks[2]"); });
  };
  // ByteTokenizer's first token of " yes" and " yak" is the space byte.
  const std::string collide = error({{"pos", " yes"}, {"neg", " no"}, {"other", " yak"}});
  EXPECT_TRUE(contains(collide, "tasks[2].verbalizer: label words ' yes' and ' no' share their first "
                                "token ' ' (id 35)"))
      << collide;
  EXPECT_TRUE(contains(error({{"a", "yes"}, {"b", "yak"}}), "'yes' and 'yak' share their first token 'y'"));
  EXPECT_TRUE(contains(error({{"a", "yes"}}), "tasks[2].verbalizer: has 1 label word(s)"));
  EXPECT_TRUE(contains(error({{"a", "yes"}, {"a", "no"}}), "label 'a' appears twice"));
  EXPECT_TRUE(contains(error({{"a", "yes"}, {"b", ""}}), "label word '' (label 'b') has no tokens"));
  EXPECT_TRUE(contains(error({{"a", "yes"}, {"", "no"}}), "class 1 has an empty label value"));
}

TEST(TaskEncoder, RealTokenizerCollisions) {
  SPARC_REQUIRE_SHARED(kRealTokenizer);
  Llama2cTokenizer tok(test::shared_dir() + "/" + kRealTokenizer);
  auto error = [&](const std::string& a, const std::string& b) {
    return error_text([&] { TaskEncoder(tok, "{text}", {{"0", a}, {"1", b}}, "", 64, "tasks[0]"); });
  };
  // 512 pieces: "good" and "great" both start with the piece " g".
  const std::string g = error("good", "great");
  EXPECT_TRUE(contains(g, "label words 'good' and 'great' share their first token ' g'")) << g;
  // SPEC 1.6's pair: with a leading space (on top of llama2.c's dummy prefix) both start with " ".
  const std::string b = error(" bad", " bland");
  EXPECT_TRUE(contains(b, "label words ' bad' and ' bland' share their first token ' '")) << b;
  // Without it they differ: the vocabulary has both " b" and " bl".
  TaskEncoder ok(tok, "{text}", {{"0", "bad"}, {"1", "bland"}}, "", 64, "tasks[0]");
  EXPECT_EQ(tok.piece(ok.label_token_ids()[0]), " b");
  EXPECT_EQ(tok.piece(ok.label_token_ids()[1]), " bl");
}

TEST(TaskEncoder, RealTokenizerTruncation) {
  SPARC_REQUIRE_SHARED(kRealTokenizer);
  Llama2cTokenizer tok(test::shared_dir() + "/" + kRealTokenizer);
  TaskEncoder enc(tok, "Passage: {passage}\nQuestion: {question}?\nAnswer:", kYesNo, "passage", 80,
                  "tasks[0]");
  std::string passage;
  for (int i = 0; i < 20; ++i) passage += "Once upon a time there was a little girl named Lily. ";
  const Example ex = boolq("did she play outside", passage);
  const EncodedExample e = enc.encode(ex);
  EXPECT_LE(e.ids.size(), 80u);
  EXPECT_GT(e.ids.size(), 70u);  // the cut keeps as much passage as fits
  EXPECT_EQ(e.ids[0], Llama2cTokenizer::kBos);
  const std::string text = tok.decode(e.ids);
  EXPECT_EQ(text.rfind("Passage: Once upon a time", 0), 0u) << text;
  const std::string tail = "\nQuestion: did she play outside?\nAnswer:";
  ASSERT_GE(text.size(), tail.size());
  EXPECT_EQ(text.substr(text.size() - tail.size()), tail) << text;
}

}  // namespace
}  // namespace sparc
