// Turns examples into token ids for classification by verbalizer (SPEC 1.6):
// a template renders the example as text, and each class is scored by the
// logit of its label word's first token right after that text.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/example.h"
#include "tokenizer/tokenizer.h"

namespace sparc {

struct EncodedExample {
  std::vector<std::int32_t> ids;        // BOS (if any) + the rendered text: what the model sees
  int label = -1;                       // class index into the verbalizer
  std::vector<std::int32_t> input_ids;  // the example's own field values only, for the task PCA
};

class TaskEncoder {
 public:
  // `template_text` holds {field} placeholders, with {{ and }} for literal
  // braces. `verbalizer`: (label value, label word) pairs; the class index is
  // the position. `truncate_field` is the field shortened when an example
  // exceeds `max_length` tokens (empty: the longest field of that example).
  // `where` names the task in errors ("tasks[1]"). `tok` must outlive the
  // encoder. Throws InputError for a bad
  // template, verbalizer or length, and for label words that share a first token.
  TaskEncoder(const Tokenizer& tok, std::string template_text,
              std::vector<std::pair<std::string, std::string>> verbalizer,
              std::string truncate_field, int max_length, std::string where);

  const std::vector<std::int32_t>& label_token_ids() const { return label_token_ids_; }
  int num_classes() const { return static_cast<int>(label_token_ids_.size()); }
  // Field names the template uses, in order of first use.
  const std::vector<std::string>& fields() const { return fields_; }

  // The template applied to an example, untruncated.
  std::string render(const Example& ex) const;
  // Throws InputError naming the example's source for a missing field, a label
  // outside the verbalizer, or a text that cannot be cut to max_length.
  EncodedExample encode(const Example& ex) const;

 private:
  struct Segment {
    std::string literal;
    int field = -1;  // index into fields_ for a placeholder, -1 for literal text
  };
  using Values = std::vector<const std::string*>;  // one per fields_ entry

  Values lookup(const Example& ex) const;
  std::string render(const Values& values) const;
  std::vector<std::int32_t> tokenize(const Values& values) const;
  int class_of(const Example& ex) const;

  const Tokenizer& tok_;
  std::vector<Segment> segments_;
  std::vector<std::string> fields_;
  std::vector<std::string> label_values_;
  std::vector<std::int32_t> label_token_ids_;
  std::string truncate_field_;
  int max_length_;
  std::string where_;
};

}  // namespace sparc
