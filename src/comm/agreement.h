// Start-up agreement (SPEC 3): every rank validates its inputs locally, then
// one MAX all-reduce of error flags runs before any other collective, so a
// file missing on one host stops all ranks with its message instead of
// leaving the others waiting in a collective. Then the ranks compare
// fingerprints (of the resolved config, of the base model) as plain values.
#pragma once

#include <cstdint>
#include <string>

#include "comm/communicator.h"
#include "core/error.h"

namespace sparc {

// An input error every rank agreed on (each rank throws the same one), so
// each can exit normally; any other error on one rank must abort the job.
class AgreedError : public InputError {
 public:
  using InputError::InputError;
};

// `local_error` is empty when this rank's inputs are fine. If any rank has an
// error, every rank throws InputError("rank R", message of the lowest such
// rank) as an AgreedError after the collective; otherwise returns.
void agree_on_errors(Communicator& comm, const std::string& local_error);

// Throws AgreedError on every rank when `value` differs between ranks, naming
// `what` and the ranks that differ from rank 0.
void agree_on_value(Communicator& comm, const std::string& what, std::uint64_t value);

}  // namespace sparc
