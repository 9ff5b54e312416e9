// Failures to write the files a run produces (checkpoints, results.json,
// metrics.jsonl): not the user's input, so not an InputError, and they have
// an exit code of their own.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace sparc {

// A checkpoint or run-directory write failed (sysexits' EX_IOERR).
inline constexpr int kExitStorage = 74;

// A file sparc writes could not be written (disk full, read-only mount, a
// path through a regular file): the message names the path and the system's
// reason. `agreed`: every rank throws it together after a collective, so each
// exits normally with kExitStorage; otherwise the CLI aborts the other ranks.
class StorageError : public std::runtime_error {
 public:
  explicit StorageError(const std::string& message, bool agreed = false)
      : std::runtime_error(message), agreed_(agreed) {}
  bool agreed() const { return agreed_; }

 private:
  bool agreed_;
};

// Writes `text` to `path` (created or truncated) with write(2), checking every
// call including close(2). On failure removes what it wrote and throws
// StorageError "path: write: No space left on device" (the errno text).
void write_file(const std::string& path, const std::string& text);
void write_file(const std::string& path, const char* data, std::size_t size);

}  // namespace sparc
