// The error of an invalid config file (run or pretrain): every problem at once.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"

namespace sparc {

// Every problem found in a config, one per line of what(), each starting with
// its location: "file:line: key.path: message", "file (--set a.b=c): ...", or
// "file: ..." when no line is known. where() is the config file.
class ConfigError : public InputError {
 public:
  ConfigError(const std::string& file, std::vector<std::string> problems);
  const char* what() const noexcept override { return text_.c_str(); }
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
  std::string text_;
};

}  // namespace sparc
