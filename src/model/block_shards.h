// The sharded store of a model's blocks (SPEC 3, `model.sharding: layer`).
// Each block's tensors are laid end to end in one flat buffer (canonical
// order); rank r keeps elements [r c, (r + 1) c) of it, c = ceil(total / N),
// read from the source as a slice. A block's full weights come back with one
// all-gather (tag `gather`) into one of two buffers allocated once (the
// running block's and the prefetched one's), reused once no view of the
// previous block in it is left; a block whose views live on (kept for
// backward: model.recompute) makes the next gather use a fresh buffer. The
// gather of the next block is issued before the current one is returned, so
// it travels while the current block computes.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/weight_source.h"

namespace sparc {

class BlockShards {
 public:
  BlockShards(Communicator& comm, torch::Dtype dtype, torch::Device device);

  // Appends the next block: `tensors` are its canonical names (in layout
  // order) and shapes, already checked against the source.
  void add_block(const WeightSource& source,
                 const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& tensors);
  // Appends a block made of rows [row0, row0 + rows) of the source's 2-D
  // tensor `name` (`cols` columns): a vocabulary slice (model/vocab_shards.h).
  // Its flat buffer is padded to q N rows, q = ceil(rows / N), so rank r
  // keeps whole rows [r q, (r + 1) q) (zeros past `rows`).
  void add_rows(const WeightSource& source, const std::string& name, std::int64_t row0,
                std::int64_t rows, std::int64_t cols);
  // This rank's stored slice of block `l`'s flat buffer.
  const torch::Tensor& chunk(std::int64_t l) const { return blocks_.at(size_t(l)).chunk; }

  // Block `l`'s tensors by canonical name, full size (views into one gathered
  // buffer). Issues the gather of block `next` (-1: none) before returning.
  // Every rank must make the same sequence of calls.
  std::map<std::string, torch::Tensor> gather(std::int64_t l, std::int64_t next);

  // Moves the prefetched gather on without waiting for it (MPI progresses
  // large messages only inside its calls); the model calls it between the
  // running block's products. SPARC_GATHER_PROGRESS=0 makes it a no-op.
  void progress();

  std::int64_t blocks() const { return std::int64_t(blocks_.size()); }
  // Bytes of block `l`'s full weights (what one gather brings).
  std::int64_t block_bytes(std::int64_t l) const;
  // Bytes of block weights kept on this rank.
  std::int64_t resident_bytes() const;

 private:
  struct Entry {
    std::string name;
    std::vector<std::int64_t> shape;
    std::int64_t offset = 0, numel = 0;
    std::int64_t source_offset = 0;  // its first element in the source tensor
  };
  struct Stored {
    std::vector<Entry> entries;
    std::int64_t total = 0;
    torch::Tensor chunk;  // [c]: this rank's slice of the flat buffer
  };
  // `total` > 0: the flat buffer's length (padding after the entries).
  void add(const WeightSource& source, std::vector<Entry> entries, std::int64_t total = 0);
  std::unique_ptr<CommWork> start(std::int64_t l, torch::Tensor& out);
  // A flat buffer of `numel` elements: a free pooled one, else a new one.
  torch::Tensor buffer(std::int64_t numel);

  Communicator& comm_;
  torch::Dtype dtype_;
  torch::Device device_;
  std::vector<Stored> blocks_;
  std::int64_t pending_block_ = -1;
  torch::Tensor pending_buffer_;
  std::unique_ptr<CommWork> pending_;
  std::vector<torch::Tensor> pool_;  // at most two, each of the largest block's size
  std::int64_t pooled_uses_ = 0, fresh_uses_ = 0;
  bool progress_ = true;
  double wait_seconds_ = 0;  // blocked in gather() waiting for a block's weights

 public:
  // Gathers served from the pool and from fresh buffers (tests, benchmarks).
  std::pair<std::int64_t, std::int64_t> buffer_uses() const { return {pooled_uses_, fresh_uses_}; }
  double wait_seconds() const { return wait_seconds_; }
};

}  // namespace sparc
