// Exact, order-free sums over work units and ranks (SPEC 3: same bits at
// any world size). A unit's values become int64 fixed point, round(x * 2^e)
// with round-half-even and one power-of-two scale per segment, agreed by one
// MAX all-reduce of the segments' largest magnitudes; integers then add in
// any order and grouping to the same bits, locally and in one SUM all-reduce.
//
// The scale is the largest with units * (max * 2^e + 1) < 2^62, so no sum
// can overflow. Error bound, per element, against the exact real sum of the
// units' values: units * 2^-(e+1) from rounding each unit, plus the final
// conversion to f64 (relative 2^-53); with the scale's choice, that is at
// most about units^2 * max * 2^-61 + |sum| * 2^-53.
//
// Non-finite values never reach an integer conversion: a unit with a NaN or
// an Inf makes its rank send +Inf to the MAX, and reduce() then returns an
// undefined tensor on every rank. A MAX of 0 is an exact zero sum.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "comm/communicator.h"

namespace sparc {

// The exponent e for values |x| <= max_abs of which `units` are added:
// the largest with units * (max_abs * 2^e + 1) <= 2^62, clamped to [-1000,
// 1000] (0 when max_abs is 0). max_abs must be finite, units >= 1.
int fixed_point_exponent(double max_abs, std::int64_t units);

// round-half-even(x * 2^e) as int64, x any floating dtype and device
// (finite, within the exponent's bound).
torch::Tensor to_fixed_point(const torch::Tensor& x, int exponent);
// q * 2^-e as f64.
torch::Tensor from_fixed_point(const torch::Tensor& q, int exponent);

class ExactSum {
 public:
  // `segments`: the numel of each part of a unit's flat values, each with
  // its own scale (a parameter each, say). `total_units`: the units over
  // every rank that reduce() will add (the overflow bound); the same on
  // every rank.
  ExactSum(std::vector<std::int64_t> segments, std::int64_t total_units);

  // Known bounds: every unit's values in segment s satisfy |x| <= bounds[s]
  // (finite, the same on every rank). Units are then converted as they are
  // added, nothing is kept, and reduce() needs no MAX.
  ExactSum(std::vector<std::int64_t> segments, std::int64_t total_units,
           const std::vector<double>& bounds);

  // One unit's flat values (numel = the segments' total; any floating dtype
  // and device). Unbounded sums keep a copy until reduce().
  void add(const torch::Tensor& unit);
  // Marks this rank's share non-finite (fault injection, or a value known bad).
  void poison() { poisoned_ = true; }
  std::int64_t units_added() const { return added_; }

  // Collective on `comm` (null: one process) under `tag`, called once on
  // every rank: the flat f64 sum of every rank's units, on the device of the
  // units (CPU when none was added), or an undefined tensor on every rank
  // when any unit anywhere was non-finite.
  torch::Tensor reduce(Communicator* comm, CommTag tag);

  // After reduce(): each segment's exponent.
  const std::vector<int>& exponents() const { return exponents_; }

 private:
  std::vector<std::int64_t> segments_;
  std::int64_t numel_ = 0;
  std::int64_t total_units_;
  bool bounded_ = false;
  bool poisoned_ = false;
  std::int64_t added_ = 0;
  std::vector<torch::Tensor> kept_;      // unbounded: the units, until reduce()
  torch::Tensor local_max_;              // unbounded: per segment, over kept units (f64, units' device)
  std::vector<int> exponents_;
  torch::Tensor acc_;                    // bounded: the int64 running sum
  torch::Device device_ = torch::kCPU;
};

// Per-unit scalars gathered exactly: `slots` (f64 [units]) holds this rank's
// units' values and zeros elsewhere; one SUM all-reduce (x + 0 is exact in
// any order) gives every unit's value on every rank, added here in unit
// order. comm null: one process.
double sum_in_unit_order(Communicator* comm, torch::Tensor slots, CommTag tag);

}  // namespace sparc
