// One labelled example of a task, as read from a data file, before any
// template or tokenizer is applied.
#pragma once

#include <map>
#include <string>

namespace sparc {

struct Example {
  std::map<std::string, std::string> fields;  // text fields by name, for {name} in templates
  std::string label;   // the label value as text: "0"/"1", "true"/"false", "entailment", ...
  std::string source;  // "path:line", for error messages
};

}  // namespace sparc
