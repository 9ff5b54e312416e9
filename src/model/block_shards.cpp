#include "model/block_shards.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace sparc {

namespace {

// SPARC_GATHER_PROGRESS=0 turns the progress pokes off (for measuring them).
bool progress_enabled() {
  const char* v = std::getenv("SPARC_GATHER_PROGRESS");
  return !(v && std::strcmp(v, "0") == 0);
}

}  // namespace

BlockShards::BlockShards(Communicator& comm, torch::Dtype dtype, torch::Device device)
    : comm_(comm), dtype_(dtype), device_(device), progress_(progress_enabled()) {}

void BlockShards::add_block(
    const WeightSource& source,
    const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& tensors) {
  std::vector<Entry> entries;
  for (const auto& [name, shape] : tensors) {
    Entry e{name, shape, 0, 1, 0};
    for (auto d : shape) e.numel *= d;
    entries.push_back(std::move(e));
  }
  add(source, std::move(entries));
}

void BlockShards::add_rows(const WeightSource& source, const std::string& name, std::int64_t row0,
                           std::int64_t rows, std::int64_t cols) {
  const std::int64_t q = (rows + comm_.size() - 1) / comm_.size();
  add(source, {Entry{name, {rows, cols}, 0, rows * cols, row0 * cols}}, q * comm_.size() * cols);
}

void BlockShards::add(const WeightSource& source, std::vector<Entry> entries, std::int64_t total) {
  torch::NoGradGuard no_grad;
  Stored s;
  for (Entry& e : entries) {
    e.offset = s.total;
    s.total += e.numel;
    s.entries.push_back(std::move(e));
  }
  s.total = std::max(s.total, total);
  const std::int64_t n = comm_.size(), c = (s.total + n - 1) / n;
  const std::int64_t begin = comm_.rank() * c, end = std::min(s.total, begin + c);
  s.chunk = torch::zeros({c}, torch::dtype(dtype_).device(device_));  // the tail pads
  for (const Entry& e : s.entries) {
    const std::int64_t a = std::max(begin, e.offset), b = std::min(end, e.offset + e.numel);
    if (a >= b) continue;
    auto part = source.load_elements(e.name, e.source_offset + a - e.offset, b - a);
    s.chunk.slice(0, a - begin, b - begin).copy_(part.to(device_, dtype_));
  }
  blocks_.push_back(std::move(s));
}

torch::Tensor BlockShards::buffer(std::int64_t numel) {
  // Free: only the pool holds the buffer and no view of its storage is left.
  for (const auto& b : pool_)
    if (b.numel() >= numel && b.use_count() == 1 && b.storage().use_count() == 1) {
      ++pooled_uses_;
      return b.narrow(0, 0, numel);
    }
  std::int64_t largest = 0;
  for (const auto& s : blocks_) largest = std::max(largest, s.chunk.size(0) * comm_.size());
  auto options = torch::dtype(dtype_).device(device_);
  if (pool_.size() < 2 && numel <= largest) {
    pool_.push_back(torch::empty({largest}, options));
    ++pooled_uses_;
    return pool_.back().narrow(0, 0, numel);
  }
  ++fresh_uses_;
  return torch::empty({numel}, options);
}

std::unique_ptr<CommWork> BlockShards::start(std::int64_t l, torch::Tensor& out) {
  const auto& chunk = blocks_.at(size_t(l)).chunk;
  out = buffer(chunk.size(0) * comm_.size());
  return comm_.all_gather_async(chunk, out, CommTag::kGather);
}

std::map<std::string, torch::Tensor> BlockShards::gather(std::int64_t l, std::int64_t next) {
  torch::Tensor full;
  const auto t0 = std::chrono::steady_clock::now();
  if (pending_ && pending_block_ == l) {
    pending_->wait();
    full = std::move(pending_buffer_);
  } else {
    if (pending_) pending_->wait();  // a prefetch nobody used (same on every rank)
    start(l, full)->wait();
  }
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  pending_.reset();
  pending_buffer_ = torch::Tensor();
  pending_block_ = -1;
  if (next >= 0 && next < blocks()) {
    pending_ = start(next, pending_buffer_);
    pending_block_ = next;
  }
  std::map<std::string, torch::Tensor> out;
  for (const Entry& e : blocks_[size_t(l)].entries)
    out[e.name] = full.slice(0, e.offset, e.offset + e.numel).view(e.shape);
  return out;
}

void BlockShards::progress() {
  if (pending_ && progress_) pending_->progress();
}

std::int64_t BlockShards::block_bytes(std::int64_t l) const {
  const Stored& s = blocks_.at(size_t(l));
  return s.total * s.chunk.element_size();
}

std::int64_t BlockShards::resident_bytes() const {
  std::int64_t bytes = 0;
  for (const auto& s : blocks_) bytes += s.chunk.numel() * s.chunk.element_size();
  return bytes;
}

}  // namespace sparc
