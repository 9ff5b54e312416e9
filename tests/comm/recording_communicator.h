// A test double for the data-plane communicator: forwards every collective
// to a real one (MPI) and counts it under its own tags, so a test that
// registers it as a backend (register_test_backend) sees exactly which tags
// the selected backend carried. backend() is the name it is registered under.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "comm/communicator.h"

namespace sparc::test {

class RecordingCommunicator final : public Communicator {
 public:
  RecordingCommunicator(std::string name, std::unique_ptr<Communicator> inner)
      : name_(std::move(name)), inner_(std::move(inner)) {
    set_timeout(inner_->timeout());
  }

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  int local_rank() const override { return inner_->local_rank(); }
  std::string backend() const override { return name_; }

  std::unique_ptr<CommWork> all_reduce_async(torch::Tensor& t, ReduceOp op, CommTag tag) override {
    record(tag, t);
    return inner_->all_reduce_async(t, op, tag);
  }
  std::unique_ptr<CommWork> all_gather_async(const torch::Tensor& t, torch::Tensor& out,
                                             CommTag tag) override {
    record(tag, t);
    return inner_->all_gather_async(t, out, tag);
  }
  torch::Tensor reduce_scatter(const torch::Tensor& t, ReduceOp op, CommTag tag) override {
    record(tag, t);
    return inner_->reduce_scatter(t, op, tag);
  }
  void broadcast(torch::Tensor& t, int root, CommTag tag) override {
    record(tag, t);
    inner_->broadcast(t, root, tag);
  }
  void barrier(CommTag tag) override {
    count(tag, 0);
    ++sequence_;
    inner_->barrier(tag);
  }

  // The calls of every tag this double carried so far (not reset by reset_counters).
  std::int64_t total_calls(CommTag tag) const { return totals_[int(tag)]; }

 private:
  void record(CommTag tag, const torch::Tensor& t) {
    count(tag, t.numel() * t.element_size());
    ++totals_[int(tag)];
    ++sequence_;
  }
  std::string name_;
  std::unique_ptr<Communicator> inner_;
  std::int64_t totals_[kCommTagCount] = {};
};

}  // namespace sparc::test
