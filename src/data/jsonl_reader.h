// Readers for task data in JSON Lines: the SuperGLUE files as distributed
// (their own field names) and a generic {"text", "text_b", "label"} form.
//
// Fields each format yields (label as text in every case):
//   generic  text, text_b (optional), and every other string field
//   boolq    question, passage                      label true/false
//   cb, rte  premise, hypothesis                    label as in the file
//   copa     premise, choice1, choice2, question    label 0/1
//   wic      word, sentence1, sentence2             label true/false
//   wsc      text, span1_text, span2_text           label true/false
//   multirc  passage, question, answer              label 0/1, one example per answer
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "data/example.h"

namespace sparc {

// Reads every example of a file. Throws InputError naming "path:line" for a
// bad line, the path for a missing or empty file, and the format name for an
// unknown format.
std::vector<Example> read_examples(const std::string& path, const std::string& format);

// The same over text held in memory (tests, fuzzing); `path` names it in errors.
std::vector<Example> parse_examples(std::string_view text, const std::string& path,
                                    const std::string& format);

std::vector<std::string> supported_formats();

// nlohmann's exception text without its "[json.exception.parse_error.101] "
// prefix, which says nothing to a user: "parse error at line 1, column 5: ...".
std::string json_error_text(const std::string& what);

}  // namespace sparc
