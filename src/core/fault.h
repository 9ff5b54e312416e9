// Fault injection for tests (no timing races): SPARC_FAULT=ACTION@POINT:N
// makes the process act on itself the N-th time it reaches POINT.
//   ACTION: kill (SIGKILL) | stop (SIGSTOP, a stalled process) |
//           nan (the caller poisons its numbers: step's gradients become NaN)
//   POINT:  step (an optimizer step, counted over the whole run, before its
//           gradient all-reduce; a resumed run continues the count)
//           checkpoint-write (the N-th checkpoint this process writes, after
//           part of its .tmp file is on disk: a write cut short)
// N may be a range A-B (every count from A to B), e.g. nan@step:3-9.
// SPARC_FAULT_RANK=R limits it to the process whose rank is R (unset or empty: every rank).
#pragma once

#include <cstdint>
#include <string>

namespace sparc {

// Called at each `point` with its 1-based count on this rank; acts when the
// environment asks for it. Returns true when the action is `nan` (the caller
// poisons its values). Malformed SPARC_FAULT values throw InputError.
bool fault_point(const std::string& point, std::int64_t count, int rank);

}  // namespace sparc
