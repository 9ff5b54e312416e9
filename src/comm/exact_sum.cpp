#include "comm/exact_sum.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace sparc {
namespace {

constexpr int kMinExponent = -1000, kMaxExponent = 1000;

// The largest |x| of each segment of a flat tensor (f64, on its device),
// +Inf where one is not finite.
torch::Tensor segment_maxima(const torch::Tensor& flat, const std::vector<std::int64_t>& segs) {
  std::vector<torch::Tensor> parts;
  std::int64_t offset = 0;
  const auto f64 = flat.options().dtype(torch::kFloat64);
  for (auto n : segs) {
    auto s = flat.narrow(0, offset, n);
    offset += n;
    if (n == 0) {
      parts.push_back(torch::zeros({}, f64));
      continue;
    }
    // NaN compares false everywhere: replace a non-finite segment's maximum by +Inf.
    parts.push_back(torch::where(torch::isfinite(s).all(), s.abs().max().to(torch::kFloat64),
                                 torch::full({}, std::numeric_limits<double>::infinity(), f64)));
  }
  return torch::stack(parts);
}

}  // namespace

int fixed_point_exponent(double max_abs, std::int64_t units) {
  if (!(max_abs >= 0) || std::isinf(max_abs) || units < 1)
    throw std::invalid_argument("fixed_point_exponent: needs a finite max and units >= 1");
  if (max_abs == 0) return 0;
  // units * (max * 2^e + 1) <= 2^62  <=>  max * 2^e <= 2^62 / units - 1.
  // In long double, whose 64-bit significand holds 2^62 / units - 1 closely.
  const long double limit = std::ldexp(1.0L, 62) / (long double)units - 1.0L;
  int k = 0;
  std::frexp(limit / max_abs, &k);  // 2^(k-1) <= limit / max < 2^k
  int e = k - 1;
  // The quotient is rounded: step down until the bound holds exactly.
  while (e > kMinExponent && std::ldexp((long double)max_abs, e) > limit) --e;
  return std::max(kMinExponent, std::min(kMaxExponent, e));
}

torch::Tensor to_fixed_point(const torch::Tensor& x, int exponent) {
  // x * 2^e is exact in f64 (a power of two; f32 and bf16 values widen
  // exactly); round() is half-to-even (nearbyint in the default mode).
  auto scaled = x.to(torch::kFloat64) * std::ldexp(1.0, exponent);
  return torch::round(scaled).to(torch::kLong);
}

torch::Tensor from_fixed_point(const torch::Tensor& q, int exponent) {
  return q.to(torch::kFloat64) * std::ldexp(1.0, -exponent);
}

ExactSum::ExactSum(std::vector<std::int64_t> segments, std::int64_t total_units)
    : segments_(std::move(segments)), total_units_(std::max<std::int64_t>(1, total_units)) {
  for (auto n : segments_) numel_ += n;
}

ExactSum::ExactSum(std::vector<std::int64_t> segments, std::int64_t total_units,
                   const std::vector<double>& bounds)
    : ExactSum(std::move(segments), total_units) {
  if (bounds.size() != segments_.size())
    throw std::invalid_argument("ExactSum: one bound per segment");
  bounded_ = true;
  for (double b : bounds) {
    if (!std::isfinite(b)) {  // a non-finite bound: nothing can be converted
      poisoned_ = true;
      exponents_.push_back(0);
    } else {
      exponents_.push_back(fixed_point_exponent(b, total_units_));
    }
  }
}

void ExactSum::add(const torch::Tensor& unit) {
  if (unit.numel() != numel_)
    throw std::invalid_argument("ExactSum::add: a unit of " + std::to_string(unit.numel()) +
                                " values; the segments hold " + std::to_string(numel_));
  auto flat = unit.reshape(-1);
  if (added_ == 0) device_ = flat.device();
  ++added_;
  if (!bounded_) {
    // The running maxima stay on the units' device: no host sync per unit.
    const auto m = segment_maxima(flat, segments_);
    local_max_ = local_max_.defined() ? torch::maximum(local_max_, m) : m;
    kept_.push_back(flat.detach().clone());
    return;
  }
  if (poisoned_) return;
  const auto host = segment_maxima(flat, segments_).cpu();
  const std::vector<double> m(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
  std::int64_t offset = 0;
  std::vector<torch::Tensor> parts;
  for (size_t s = 0; s < segments_.size(); ++s) {
    if (!std::isfinite(m[s])) {
      poisoned_ = true;
      return;
    }
    parts.push_back(to_fixed_point(flat.narrow(0, offset, segments_[s]), exponents_[s]));
    offset += segments_[s];
  }
  auto q = parts.empty() ? torch::zeros({0}, torch::kLong) : torch::cat(parts);
  if (acc_.defined()) acc_.add_(q);
  else acc_ = q;
}

torch::Tensor ExactSum::reduce(Communicator* comm, CommTag tag) {
  const bool many = comm != nullptr && comm->size() > 1;
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(device_);
  if (!bounded_) {
    // One MAX over the ranks of each segment's largest magnitude.
    auto maxima = local_max_.defined()
                      ? local_max_.clone()
                      : torch::zeros({std::int64_t(segments_.size())}, f64);
    if (poisoned_) maxima.fill_(std::numeric_limits<double>::infinity());
    if (many) comm->all_reduce(maxima, ReduceOp::kMax, tag);
    auto host = maxima.cpu();
    exponents_.clear();
    bool finite = true;
    for (std::int64_t s = 0; s < host.numel(); ++s) {
      const double m = host[s].item<double>();
      finite = finite && std::isfinite(m);
      exponents_.push_back(finite ? fixed_point_exponent(m, total_units_) : 0);
    }
    if (!finite) {
      kept_.clear();
      return {};
    }
    acc_ = torch::zeros({numel_}, f64.dtype(torch::kLong));
    for (const auto& unit : kept_) {
      std::int64_t offset = 0;
      for (size_t s = 0; s < segments_.size(); ++s) {
        acc_.narrow(0, offset, segments_[s])
            .add_(to_fixed_point(unit.narrow(0, offset, segments_[s]), exponents_[s]));
        offset += segments_[s];
      }
    }
    kept_.clear();
  } else {
    // Bounded sums have agreed exponents already; a poisoned rank still has
    // to tell the others, so a one-value MAX carries the flag.
    auto flag = torch::tensor({poisoned_ ? 1.0 : 0.0}, f64);
    if (many) comm->all_reduce(flag, ReduceOp::kMax, tag);
    if (flag.cpu().item<double>() != 0) return {};
    if (!acc_.defined()) acc_ = torch::zeros({numel_}, f64.dtype(torch::kLong));
  }
  if (many) comm->all_reduce(acc_, ReduceOp::kSum, tag);
  std::vector<torch::Tensor> out;
  std::int64_t offset = 0;
  for (size_t s = 0; s < segments_.size(); ++s) {
    out.push_back(from_fixed_point(acc_.narrow(0, offset, segments_[s]), exponents_[s]));
    offset += segments_[s];
  }
  acc_ = torch::Tensor();
  return out.empty() ? torch::zeros({0}, f64) : torch::cat(out);
}

double sum_in_unit_order(Communicator* comm, torch::Tensor slots, CommTag tag) {
  // On the host: the control plane (MPI) takes host tensors, and the NCCL
  // data plane stages them.
  slots = slots.to(torch::kCPU, torch::kFloat64);
  if (comm != nullptr && comm->size() > 1) comm->all_reduce(slots, ReduceOp::kSum, tag);
  auto host = slots.cpu().contiguous();
  const double* v = host.data_ptr<double>();
  double total = 0;
  for (std::int64_t u = 0; u < host.numel(); ++u) total += v[u];
  return total;
}

}  // namespace sparc
