// This process's place in a data-parallel run (SPEC 3), and the two
// collectives every training path uses on small tensors. A null
// communicator is a single process: every call is then local.
//
// Two planes: `comm` carries the data (tags grad, pca, gather, eval: NCCL
// on GPUs); `control` carries agreement, stop flags and pass counts (tag
// control: always MPI, which also bootstraps and watches). Null control:
// the data communicator carries both.
#pragma once

#include <torch/torch.h>

#include <cstdint>

#include "comm/communicator.h"

namespace sparc {

struct Ranks {
  Communicator* comm = nullptr;
  Communicator* control = nullptr;

  Communicator& control_plane() const { return control ? *control : *comm; }

  int rank() const { return comm ? comm->rank() : 0; }
  int world() const { return comm ? comm->size() : 1; }
  bool is_root() const { return rank() == 0; }
  // Data parallel by global position: whether `position` of [begin, ...) is this rank's.
  bool mine(std::int64_t position, std::int64_t begin = 0) const {
    return (position - begin) % world() == rank();
  }
  // Collectives on the plane of their tag.
  Communicator& plane(CommTag tag) const {
    return tag == CommTag::kControl ? control_plane() : *comm;
  }
  void sum(torch::Tensor& t, CommTag tag) const {
    if (world() > 1) plane(tag).all_reduce(t, ReduceOp::kSum, tag);
  }
  void max(torch::Tensor& t, CommTag tag) const {
    if (world() > 1) plane(tag).all_reduce(t, ReduceOp::kMax, tag);
  }
  void from_root(torch::Tensor& t, CommTag tag) const {
    if (world() > 1) plane(tag).broadcast(t, 0, tag);
  }
};

}  // namespace sparc
