#include "model/vocab_shards.h"

#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "comm/communicator.h"
#include "model/block_shards.h"

namespace sparc {

VocabTable::VocabTable(torch::Tensor whole, std::int64_t slice_rows)
    : whole_(std::move(whole)),
      rows_(whole_.size(0)),
      dim_(whole_.size(1)),
      slice_rows_(std::max<std::int64_t>(1, slice_rows)) {}

VocabTable::VocabTable(const WeightSource& source, const std::string& name, std::int64_t rows,
                       std::int64_t dim, std::int64_t slice_rows,
                       std::shared_ptr<BlockShards> shards, Communicator& comm)
    : shards_(std::move(shards)),
      comm_(&comm),
      rows_(rows),
      dim_(dim),
      slice_rows_(std::max<std::int64_t>(1, slice_rows)),
      first_(shards_->blocks()) {
  for (std::int64_t s = 0; s < slices(); ++s) {
    const std::int64_t row0 = s * slice_rows_;
    shards_->add_rows(source, name, row0, std::min(slice_rows_, rows_ - row0), dim_);
  }
}

VocabTable::~VocabTable() = default;

torch::Tensor VocabTable::slice(std::int64_t s, std::int64_t next) const {
  const std::int64_t row0 = s * slice_rows_;
  if (!shards_) return whole_.narrow(0, row0, std::min(slice_rows_, rows_ - row0));
  const auto& c = shards_->chunk(first_ + s);
  bytes_sent_ += c.numel() * c.element_size();
  return shards_->gather(first_ + s, next >= 0 ? first_ + next : -1).begin()->second;
}

void VocabTable::idle_slices() const {
  if (!shards_) return;
  const std::int64_t S = slices();
  for (std::int64_t s = 0; s < S; ++s) slice(s, s + 1 < S ? s + 1 : -1);
}

torch::Tensor VocabTable::lookup(const torch::Tensor& ids_in) const {
  auto ids = ids_in.reshape(-1);
  if (!shards_) return whole_.index_select(0, ids.to(whole_.device()));
  torch::NoGradGuard no_grad;  // sharded tables are frozen
  const auto device = shards_->chunk(first_).device();
  const auto dtype = shards_->chunk(first_).scalar_type();
  const std::int64_t N = comm_->size(), me = comm_->rank(), n = ids.numel();
  const auto i64 = torch::TensorOptions(torch::kLong).device(device);
  // 1-2. Every rank's ids, padded with -1 to the most any rank asks for.
  auto counts = comm_->all_gather(torch::full({1}, n, i64), CommTag::kGather).cpu();
  const std::int64_t most = counts.max().item<std::int64_t>();
  bytes_sent_ += 8;
  if (most == 0) return torch::empty({0, dim_}, torch::TensorOptions(dtype).device(device));
  auto padded = torch::full({most}, -1, i64);
  if (n > 0) padded.narrow(0, 0, n).copy_(ids);
  auto all = comm_->all_gather(padded, CommTag::kGather).cpu().contiguous();
  bytes_sent_ += 8 * most;
  // 3. The distinct ids asked for, each with its owner: slice s = v / G,
  // row j = v - s G of it, owner j / q with q = ceil(rows of s / N).
  const std::int64_t* a = all.data_ptr<std::int64_t>();
  std::vector<std::int64_t> wanted;
  for (std::int64_t i = 0; i < all.numel(); ++i)
    if (a[i] >= 0) wanted.push_back(a[i]);
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::vector<std::int64_t> owned(size_t(N), 0), position(wanted.size());
  std::vector<std::int64_t> owner(wanted.size()), local(wanted.size()), slice_of(wanted.size());
  for (size_t i = 0; i < wanted.size(); ++i) {
    const std::int64_t v = wanted[i], s = v / slice_rows_, j = v - s * slice_rows_;
    const std::int64_t q = (std::min(slice_rows_, rows_ - s * slice_rows_) + N - 1) / N;
    owner[i] = j / q;
    local[i] = j - owner[i] * q;
    slice_of[i] = s;
    position[i] = owned[size_t(owner[i])]++;  // its row in its owner's contribution
  }
  const std::int64_t K = *std::max_element(owned.begin(), owned.end());
  // This rank's rows of the wanted ids, slice by slice, in `wanted` order.
  auto mine = torch::zeros({K, dim_}, torch::TensorOptions(dtype).device(device));
  std::vector<std::int64_t> at, rows;
  for (size_t i = 0; i <= wanted.size(); ++i) {
    if (i == wanted.size() || (i > 0 && slice_of[i] != slice_of[i - 1])) {
      if (!at.empty()) {
        auto chunk = shards_->chunk(first_ + slice_of[i - 1]).view({-1, dim_});
        mine.index_copy_(0, torch::tensor(at, torch::kLong).to(device),
                         chunk.index_select(0, torch::tensor(rows, torch::kLong).to(device)));
      }
      at.clear();
      rows.clear();
      if (i == wanted.size()) break;
    }
    if (owner[i] == me) at.push_back(position[i]), rows.push_back(local[i]);
  }
  // 4. Every rank's contribution; this rank's ids read theirs from it.
  auto gathered = comm_->all_gather(mine, CommTag::kGather);  // [N K, D]
  bytes_sent_ += mine.numel() * mine.element_size();
  auto mine_ids = ids.cpu().contiguous();
  const std::int64_t* m = mine_ids.data_ptr<std::int64_t>();
  std::vector<std::int64_t> from(static_cast<size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const size_t w = size_t(std::lower_bound(wanted.begin(), wanted.end(), m[i]) - wanted.begin());
    from[size_t(i)] = owner[w] * K + position[w];
  }
  return gathered.index_select(0, torch::tensor(from, torch::kLong).to(device));
}

std::int64_t VocabTable::resident_bytes() const {
  if (!shards_) return whole_.numel() * whole_.element_size();
  std::int64_t bytes = 0;
  for (std::int64_t s = 0; s < slices(); ++s) {
    const auto& c = shards_->chunk(first_ + s);
    bytes += c.numel() * c.element_size();
  }
  return bytes;
}

}  // namespace sparc
