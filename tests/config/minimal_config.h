// The smallest valid run config (seven lines), shared by the config suites;
// a test adds an error above or below it, or overrides a key.
#pragma once

#include <string>

namespace sparc::test {

inline const std::string kMinimalConfig =
    "model:\n"
    "  path: m\n"
    "tasks:\n"
    "  - name: a\n"
    "    train: a/train.jsonl\n"
    "    test: a/test.jsonl\n"
    "    verbalizer: {neg: bad, pos: good}\n";

}  // namespace sparc::test
