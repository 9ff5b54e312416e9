// Logging: spdlog, one line per event, to stderr, so stdout carries only
// command output (generated text, JSON).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace sparc {

// level: trace, debug, info, warn, error, off. Throws InputError if unknown.
void init_logging(const std::string& level);

}  // namespace sparc

namespace sparc {
// Also writes every log line to `path` (the run directory's log.txt);
// `truncate` false appends (a resumed run).
void add_log_file(const std::string& path, bool truncate = true);
}  // namespace sparc
