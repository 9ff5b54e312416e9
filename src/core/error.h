// Errors with context. Every error a user can cause (a missing file, a bad
// header, a wrong tensor shape, a bad config value) is an InputError: the CLI
// prints its message as one line and exits with kExitInputError.
#pragma once

#include <stdexcept>
#include <string>

namespace sparc {

// Exit codes shared by every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;    // a bug or an unexpected library failure
inline constexpr int kExitInputError = 2;  // bad input: file, config, arguments
inline constexpr int kExitResumable = 75;  // stopped on request; resume from the checkpoint

class InputError : public std::runtime_error {
 public:
  // `where` names the thing at fault (a path, "path:line", a config key);
  // `what` says what is wrong and, where it helps, what was expected.
  InputError(const std::string& where, const std::string& what);
  const std::string& where() const { return where_; }

 private:
  std::string where_;
};

// Training stopped on request (SIGTERM/SIGINT) after every rank finished its
// step and a checkpoint was written: the CLI exits with kExitResumable.
class StopRequested : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Errors of the operating system, with errno's text: "open: No such file or directory".
std::string errno_text(const std::string& call);

}  // namespace sparc
