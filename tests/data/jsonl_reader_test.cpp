#include "data/jsonl_reader.h"

#include <fstream>

#include "core/error.h"
#include "test_util.h"

namespace sparc {
namespace {

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = test::make_temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The InputError `f` throws; a test failure when it throws none.
template <class F>
InputError error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "expected an InputError";
  return InputError("", "");
}

using Fields = std::map<std::string, std::string>;

TEST(JsonlReader, GenericLabelsFieldsAndBlankLines) {
  const std::string path = write_file(
      "data.jsonl",
      "{\"text\": \"good film\", \"label\": 1}\n"
      "\n"
      "   \n"
      "{\"text\": \"a\", \"text_b\": \"b\", \"label\": \"positive\", \"domain\": \"imdb\", \"idx\": 7}\n"
      "{\"label\": true, \"text\": \"t\"}\n"
      "{\"text\": \"u\", \"label\": false}");  // no final newline
  const auto ex = read_examples(path, "generic");
  ASSERT_EQ(ex.size(), 4u);
  EXPECT_EQ(ex[0].fields, (Fields{{"text", "good film"}}));
  EXPECT_EQ(ex[0].label, "1");
  EXPECT_EQ(ex[0].source, path + ":1");
  // Extra string fields are kept; the number "idx" and the label are not fields.
  EXPECT_EQ(ex[1].fields, (Fields{{"text", "a"}, {"text_b", "b"}, {"domain", "imdb"}}));
  EXPECT_EQ(ex[1].label, "positive");
  EXPECT_EQ(ex[1].source, path + ":4");  // blank lines still count
  EXPECT_EQ(ex[2].label, "true");
  EXPECT_EQ(ex[3].label, "false");
  EXPECT_EQ(ex[3].source, path + ":6");
}

TEST(JsonlReader, GenericNegativeIntegerAndCrlf) {
  const auto ex = parse_examples("{\"text\": \"x\", \"label\": -3}\r\n{\"text\": \"y\", \"label\": 0}\r\n",
                                 "mem.jsonl", "generic");
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].label, "-3");
  EXPECT_EQ(ex[1].label, "0");
  EXPECT_EQ(ex[1].fields.at("text"), "y");
}

TEST(JsonlReader, BoolQ) {
  const std::string path = write_file(
      "val.jsonl",
      "{\"question\": \"is the sky blue\", \"passage\": \"The sky is blue.\", \"idx\": 0, \"label\": true}\n"
      "{\"question\": \"q2\", \"passage\": \"p2\", \"idx\": 1, \"label\": false}\n");
  const auto ex = read_examples(path, "boolq");
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].fields, (Fields{{"question", "is the sky blue"}, {"passage", "The sky is blue."}}));
  EXPECT_EQ(ex[0].label, "true");
  EXPECT_EQ(ex[1].label, "false");
  EXPECT_EQ(ex[1].source, path + ":2");
}

TEST(JsonlReader, CbAndRte) {
  const auto cb = parse_examples(
      "{\"premise\": \"P\", \"hypothesis\": \"H\", \"label\": \"neutral\", \"idx\": 0}\n", "cb.jsonl", "cb");
  ASSERT_EQ(cb.size(), 1u);
  EXPECT_EQ(cb[0].fields, (Fields{{"premise", "P"}, {"hypothesis", "H"}}));
  EXPECT_EQ(cb[0].label, "neutral");
  const auto rte = parse_examples(
      "{\"premise\": \"A\", \"hypothesis\": \"B\", \"label\": \"not_entailment\", \"idx\": 3}\n",
      "rte.jsonl", "rte");
  ASSERT_EQ(rte.size(), 1u);
  EXPECT_EQ(rte[0].fields, (Fields{{"premise", "A"}, {"hypothesis", "B"}}));
  EXPECT_EQ(rte[0].label, "not_entailment");
}

TEST(JsonlReader, Copa) {
  const auto ex = parse_examples(
      "{\"premise\": \"My body cast a shadow over the grass.\", \"choice1\": \"The sun was rising.\", "
      "\"choice2\": \"The grass was cut.\", \"question\": \"cause\", \"idx\": 0, \"label\": 0}\n"
      "{\"premise\": \"p\", \"choice1\": \"a\", \"choice2\": \"b\", \"question\": \"effect\", \"label\": 1}\n",
      "copa.jsonl", "copa");
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].fields, (Fields{{"premise", "My body cast a shadow over the grass."},
                                  {"choice1", "The sun was rising."},
                                  {"choice2", "The grass was cut."},
                                  {"question", "cause"}}));
  EXPECT_EQ(ex[0].label, "0");
  EXPECT_EQ(ex[1].fields.at("question"), "effect");
  EXPECT_EQ(ex[1].label, "1");
}

TEST(JsonlReader, WicIgnoresOffsets) {
  const auto ex = parse_examples(
      "{\"word\": \"place\", \"sentence1\": \"Do you want to come over to my place later?\", "
      "\"sentence2\": \"A political system with no place for the less prominent groups.\", "
      "\"idx\": 0, \"label\": false, \"start1\": 31, \"start2\": 27, \"end1\": 36, \"end2\": 32, "
      "\"version\": 1.1}\n",
      "wic.jsonl", "wic");
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].fields,
            (Fields{{"word", "place"},
                    {"sentence1", "Do you want to come over to my place later?"},
                    {"sentence2", "A political system with no place for the less prominent groups."}}));
  EXPECT_EQ(ex[0].label, "false");
}

TEST(JsonlReader, WscFlattensTarget) {
  const auto ex = parse_examples(
      "{\"text\": \"Mark told Pete many lies about himself. He should have been more truthful.\", "
      "\"target\": {\"span2_index\": 9, \"span1_index\": 0, \"span1_text\": \"Mark\", \"span2_text\": \"He\"}, "
      "\"idx\": 0, \"label\": true}\n",
      "wsc.jsonl", "wsc");
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].fields,
            (Fields{{"text", "Mark told Pete many lies about himself. He should have been more truthful."},
                    {"span1_text", "Mark"},
                    {"span2_text", "He"}}));
  EXPECT_EQ(ex[0].label, "true");
}

TEST(JsonlReader, MultiRcOneExamplePerAnswer) {
  // Line 1: questions with 3 and 2 answers; line 2: one question, one answer.
  // 3 + 2 + 1 = 6 examples.
  const std::string path = write_file(
      "multirc.jsonl",
      "{\"idx\": 0, \"version\": 1.1, \"passage\": {\"text\": \"P one.\", \"questions\": ["
      "{\"question\": \"Q1?\", \"idx\": 0, \"answers\": [{\"text\": \"a1\", \"idx\": 0, \"label\": 0}, "
      "{\"text\": \"a2\", \"idx\": 1, \"label\": 1}, {\"text\": \"a3\", \"idx\": 2, \"label\": 0}]}, "
      "{\"question\": \"Q2?\", \"idx\": 1, \"answers\": [{\"text\": \"b1\", \"idx\": 3, \"label\": 1}, "
      "{\"text\": \"b2\", \"idx\": 4, \"label\": 1}]}]}}\n"
      "{\"idx\": 1, \"passage\": {\"text\": \"P two.\", \"questions\": [{\"question\": \"Q3?\", "
      "\"answers\": [{\"text\": \"c1\", \"label\": 0}]}]}}\n");
  const auto ex = read_examples(path, "multirc");
  ASSERT_EQ(ex.size(), 6u);
  const std::vector<std::string> labels = {"0", "1", "0", "1", "1", "0"};
  const std::vector<std::string> answers = {"a1", "a2", "a3", "b1", "b2", "c1"};
  for (std::size_t i = 0; i < ex.size(); ++i) {
    EXPECT_EQ(ex[i].label, labels[i]) << i;
    EXPECT_EQ(ex[i].fields.at("answer"), answers[i]) << i;
    EXPECT_EQ(ex[i].source, path + (i < 5 ? ":1" : ":2")) << i;
  }
  EXPECT_EQ(ex[3].fields, (Fields{{"passage", "P one."}, {"question", "Q2?"}, {"answer", "b1"}}));
  EXPECT_EQ(ex[5].fields, (Fields{{"passage", "P two."}, {"question", "Q3?"}, {"answer", "c1"}}));
}

TEST(JsonlReader, BadLinesNameFileLineAndField) {
  const std::string good = "{\"text\": \"x\", \"label\": 1}\n";
  const std::string path = write_file("data.jsonl", good + good + "{\"text\": \"y\", \"label\": 1.5}\n");
  InputError e = error_of([&] { read_examples(path, "generic"); });
  EXPECT_EQ(e.where(), path + ":3");
  EXPECT_STREQ(e.what(), (path + ":3: field 'label' must be a string, integer or boolean, found 1.5").c_str());

  auto generic_error = [](const std::string& text) {
    return std::string(error_of([&] { parse_examples(text, "d.jsonl", "generic"); }).what());
  };
  EXPECT_EQ(generic_error(good + "{\"label\": 1}\n"), "d.jsonl:2: missing field 'text'");
  EXPECT_EQ(generic_error("{\"text\": \"x\"}\n"), "d.jsonl:1: missing field 'label'");
  EXPECT_EQ(generic_error("{\"text\": 5, \"label\": 1}\n"),
            "d.jsonl:1: field 'text' must be a string, found 5");
  EXPECT_EQ(generic_error("{\"text\": \"x\", \"text_b\": null, \"label\": 1}\n"),
            "d.jsonl:1: field 'text_b' must be a string, found null");
  EXPECT_EQ(generic_error("{\"text\": \"x\", \"label\": [1]}\n"),
            "d.jsonl:1: field 'label' must be a string, integer or boolean, found an array");
  EXPECT_EQ(generic_error(good + "\n[1, 2]\n"), "d.jsonl:3: expected a JSON object, found an array");
  EXPECT_EQ(generic_error(good + "\"text\"\n"), "d.jsonl:2: expected a JSON object, found a string");
  const std::string bad_json = generic_error(good + good + good + "{\"text\": \"x\", \"label\": }\n");
  EXPECT_EQ(bad_json.rfind("d.jsonl:4: invalid JSON: ", 0), 0u) << bad_json;
  EXPECT_EQ(bad_json.find("json.exception"), std::string::npos) << bad_json;
}

// Found by fuzz_jsonl and fuzz_superglue (tests/fuzz/regressions): a number
// too large for a double threw nlohmann's out_of_range, not InputError, so
// the CLI called it an internal error.
TEST(JsonlReader, NumberTooLargeIsInvalidJson) {
  for (const char* format : {"generic", "rte"}) {
    InputError e = error_of([&] {
      parse_examples("\n{\"label\": 1e99999}\n", "d.jsonl", format);
    });
    EXPECT_EQ(e.where(), "d.jsonl:2") << format;
    EXPECT_NE(std::string(e.what()).find("invalid JSON: number overflow"), std::string::npos)
        << e.what();
  }
}

TEST(JsonlReader, BadSuperGlueLines) {
  auto error = [](const std::string& text, const std::string& format) {
    return std::string(error_of([&] { parse_examples(text, "v.jsonl", format); }).what());
  };
  EXPECT_EQ(error("{\"question\": \"q\", \"label\": true}\n", "boolq"), "v.jsonl:1: missing field 'passage'");
  EXPECT_EQ(error("{\"question\": \"q\", \"passage\": \"p\", \"label\": \"true\"}\n", "boolq"),
            "v.jsonl:1: field 'label' must be a boolean, found a string");
  EXPECT_EQ(error("{\"premise\": \"p\", \"hypothesis\": \"h\", \"label\": 1}\n", "cb"),
            "v.jsonl:1: field 'label' must be a string, found 1");
  EXPECT_EQ(error("{\"premise\": \"p\", \"choice1\": \"a\", \"choice2\": \"b\", \"question\": \"why\", "
                  "\"label\": 0}\n",
                  "copa"),
            "v.jsonl:1: field 'question' must be \"cause\" or \"effect\", found \"why\"");
  EXPECT_EQ(error("{\"premise\": \"p\", \"choice1\": \"a\", \"choice2\": \"b\", \"question\": \"cause\", "
                  "\"label\": 2}\n",
                  "copa"),
            "v.jsonl:1: field 'label' must be 0 or 1, found 2");
  EXPECT_EQ(error("{\"word\": \"w\", \"sentence1\": \"s\", \"label\": false}\n", "wic"),
            "v.jsonl:1: missing field 'sentence2'");
  EXPECT_EQ(error("{\"text\": \"t\", \"target\": {\"span1_text\": \"a\"}, \"label\": true}\n", "wsc"),
            "v.jsonl:1: missing field 'target.span2_text'");
  EXPECT_EQ(error("{\"text\": \"t\", \"target\": \"a\", \"label\": true}\n", "wsc"),
            "v.jsonl:1: field 'target' must be an object, found a string");
  EXPECT_EQ(error("{\"passage\": {\"text\": \"p\"}}\n", "multirc"),
            "v.jsonl:1: missing field 'passage.questions'");
  EXPECT_EQ(error("{\"passage\": {\"text\": \"p\", \"questions\": [{\"question\": \"q\", \"answers\": "
                  "[{\"text\": \"a\", \"label\": 0}, {\"text\": \"b\", \"label\": 2}]}]}}\n",
                  "multirc"),
            "v.jsonl:1: field 'passage.questions[0].answers[1].label' must be 0 or 1, found 2");
  EXPECT_EQ(error("{\"passage\": {\"text\": \"p\", \"questions\": [{\"answers\": []}]}}\n", "multirc"),
            "v.jsonl:1: missing field 'passage.questions[0].question'");
}

TEST(JsonlReader, MissingAndEmptyFiles) {
  const std::string missing = test::make_temp_dir() + "/absent.jsonl";
  InputError e = error_of([&] { read_examples(missing, "generic"); });
  EXPECT_EQ(e.where(), missing);

  const std::string empty = write_file("empty.jsonl", "");
  EXPECT_EQ(error_of([&] { read_examples(empty, "boolq"); }).where(), empty);
  const std::string blank = write_file("blank.jsonl", "\n  \n\r\n");
  EXPECT_EQ(error_of([&] { read_examples(blank, "generic"); }).where(), blank);
  // A MultiRC passage without answers yields no examples either.
  EXPECT_EQ(error_of([&] { parse_examples("{\"passage\": {\"text\": \"p\", \"questions\": []}}\n", "m.jsonl",
                                          "multirc"); })
                .where(),
            "m.jsonl");
}

TEST(JsonlReader, Formats) {
  EXPECT_EQ(supported_formats(),
            (std::vector<std::string>{"generic", "boolq", "cb", "rte", "copa", "wic", "wsc", "multirc"}));
  const std::string path = write_file("record.jsonl", "{}\n");
  const std::string record = error_of([&] { read_examples(path, "record"); }).what();
  EXPECT_NE(record.find("'record' (ReCoRD) is not supported"), std::string::npos) << record;
  const std::string unknown = error_of([&] { read_examples(path, "squad"); }).what();
  EXPECT_NE(unknown.find("unknown data format 'squad'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("generic, boolq, cb, rte, copa, wic, wsc, multirc"), std::string::npos) << unknown;
}

}  // namespace
}  // namespace sparc
