// The token embedding or the output layer as fixed slices of vocabulary rows
// (SPEC 3, `model.sharding: layer`). Slice s holds rows [s G, (s + 1) G),
// G = ModelOptions::vocab_slice_rows, which never depends on the world
// size; work over the whole vocabulary (logits, the log-softmax of
// perplexity) runs slice by slice, whole or sharded alike, so both compute
// the same products in the same order.
//
// Sharded, rank r keeps rows [r q, (r + 1) q) of every slice, q =
// ceil(rows of the slice / N) (model/block_shards.h's add_rows), and serves
// them two ways, both exact copies (no arithmetic, so no -0.0 can flip):
// - lookup(ids): an exchange whose bytes follow the ids, not the
//   vocabulary: one all-gather of the ranks' id counts, one of the ids
//   (padded to the most), one of the rows each rank owns among the distinct
//   requested ids (padded to the most any rank owns). Three collectives, on
//   every rank, whatever it asks for (one when no rank asks for any).
// - slice(s): the slice all-gathered (tag `gather`), the next slice's
//   gather issued before the current one is returned (ZeRO-3 style, like
//   the blocks): what a pass over the whole vocabulary needs.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>

namespace sparc {

class BlockShards;
class Communicator;
class WeightSource;

class VocabTable {
 public:
  // Whole: slices are views of `whole` [V, D].
  VocabTable(torch::Tensor whole, std::int64_t slice_rows);
  // Sharded: this rank's rows of every slice of the source's `name` [rows,
  // dim], appended to `shards` (the embedding and an untied output layer
  // share one store, so one pair of gather buffers).
  VocabTable(const WeightSource& source, const std::string& name, std::int64_t rows,
             std::int64_t dim, std::int64_t slice_rows, std::shared_ptr<BlockShards> shards,
             Communicator& comm);
  ~VocabTable();

  bool sharded() const { return shards_ != nullptr; }
  std::int64_t rows() const { return rows_; }
  std::int64_t slice_rows() const { return slice_rows_; }
  std::int64_t slices() const { return (rows_ + slice_rows_ - 1) / slice_rows_; }
  // Slice s's rows [min(G, V - s G), D]. Sharded: gathered, and the gather
  // of slice `next` (-1: none) is issued before returning; every rank must
  // make the same calls. Drop the returned tensor before the next call, so
  // its buffer is reused.
  torch::Tensor slice(std::int64_t s, std::int64_t next) const;
  // Rows of `ids` (int64, in range, any shape) -> [numel, D]. Sharded: the
  // exchange above; every rank calls it, with no ids if it has none.
  torch::Tensor lookup(const torch::Tensor& ids) const;
  // Sharded: the collectives of a pass over every slice (for a rank idling
  // beside peers computing logits); lookup({}) idles beside a lookup.
  void idle_slices() const;
  // The whole table (undefined when sharded).
  const torch::Tensor& whole() const { return whole_; }
  // Bytes of the table held on this rank.
  std::int64_t resident_bytes() const;
  // Bytes this rank has contributed to the table's collectives so far.
  std::int64_t bytes_sent() const { return bytes_sent_; }

 private:
  torch::Tensor whole_;
  std::shared_ptr<BlockShards> shards_;
  Communicator* comm_ = nullptr;
  std::int64_t rows_ = 0, dim_ = 0, slice_rows_ = 1, first_ = 0;  // first_: its first block in shards_
  mutable std::int64_t bytes_sent_ = 0;
};

}  // namespace sparc
