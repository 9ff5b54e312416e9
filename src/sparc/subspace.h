// Task subspaces of SPARC (SPEC 1.1-1.4, 1.7): streaming PCA of a task's
// token embeddings, the subspace prompt Z W + mu, subspace similarity and
// prompt reuse, orthogonal initialisation against stored prompts, and routing
// by reconstruction error.
//
// Everything that decides something (eigenvectors, similarity, projections)
// runs in float64, so every rank of a distributed run computes the same
// subspace from the same all-reduced sums. Shape errors are InputErrors.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace sparc {

// Streaming sums for PCA: sum(x), sum(x x^T) and n over rows [n, D] of any
// float dtype. Sums and products are formed in float32 chunks (float64 for float64
// input) and accumulated in float64.
class CovarianceAccumulator {
 public:
  explicit CovarianceAccumulator(std::int64_t dim);

  void add(const torch::Tensor& rows);

  std::int64_t count() const { return n_; }
  std::int64_t dim() const { return dim_; }
  const torch::Tensor& sum() const { return sum_; }              // [D] f64
  const torch::Tensor& sum_outer() const { return sum_outer_; }  // [D, D] f64

  // One flat f64 buffer [D + D*D + 1] holding sum, sum_outer and n: what a
  // distributed run all-reduces (sums of packs are packs of the union).
  torch::Tensor pack() const;
  void unpack(const torch::Tensor& packed);

  // f64; covariance = sum_outer/n - mu mu^T. InputError when n == 0.
  torch::Tensor mean() const;
  torch::Tensor covariance() const;

 private:
  std::int64_t dim_;
  std::int64_t n_ = 0;
  torch::Tensor sum_, sum_outer_;
};

struct Subspace {
  torch::Tensor mu;           // [D] f64
  torch::Tensor basis;        // W: [k, D] f64, orthonormal rows, by decreasing eigenvalue
  torch::Tensor eigenvalues;  // [k] f64, decreasing
  double explained_variance_ratio = 0;  // sum of the k eigenvalues / trace

  std::int64_t k() const { return basis.defined() ? basis.size(0) : 0; }
  std::int64_t dim() const { return basis.defined() ? basis.size(1) : 0; }
};

// Top-k eigenpairs of the covariance (float64 symmetric eigensolver). Each
// eigenvector's sign is fixed so that its largest-magnitude component is
// positive, so every rank and every run agrees. InputError when k is not in
// [1, D] or nothing was accumulated.
Subspace compute_subspace(const CovarianceAccumulator& acc, std::int64_t k);

// Mean squared cosine of the principal angles, ||W_a W_b^T||_F^2 / k, in
// [0, 1]. Both bases need the same shape [k, D].
double subspace_similarity(const torch::Tensor& basis_a, const torch::Tensor& basis_b);

// Coefficients of points in a subspace: (x - mu) W^T, [n, D] -> [n, k], in
// x's dtype (computed in f64).
torch::Tensor project(const torch::Tensor& x, const Subspace& s);

// Prompt embeddings of coefficients: Z W + mu, [P, k] -> [P, D], in Z's dtype
// and on Z's device; differentiable in Z.
torch::Tensor prompt_embeddings(const torch::Tensor& z, const Subspace& s);

// SPEC 1.3 reuse: a stored task's prompt embeddings [P, D] expressed in the
// target basis, Z = (prompt_j - mu) W^T.
torch::Tensor reuse_init(const torch::Tensor& prompt_j, const Subspace& target);

// A stored task's coefficients Z_j [P_j, k_j] and the subspace they live in.
struct StoredPrompt {
  torch::Tensor z;
  const Subspace* subspace = nullptr;
};

struct OrthogonalInit {
  torch::Tensor z;              // [P, k], in z_new's dtype
  std::int64_t directions = 0;  // rows of Q removed
  bool capped = false;          // B's row space had more than k - P directions (above tolerance)
  double residual_overlap = 0;  // max_j ||Z W (Z_j W_j)^T||_F after the projection
};

// SPEC 1.4: removes from z_new [P, k] the row space of B = [Z_j W_j W^T]_j
// (at most its top k - P singular directions), so that Z W (Z_j W_j)^T = 0
// for every stored j while the cap does not bind. Computed in f64.
OrthogonalInit orthogonal_init(const torch::Tensor& z_new, const Subspace& target,
                               const std::vector<StoredPrompt>& stored);

// Optional regulariser: sum_j ||Z W (Z_j W_j)^T||_F^2, a scalar in z's dtype,
// differentiable in z.
torch::Tensor orthogonality_penalty(const torch::Tensor& z, const Subspace& target,
                                    const std::vector<StoredPrompt>& stored);

// SPEC 1.7: mean over rows x [n, D] of ||(x - mu) - (x - mu) W^T W||^2.
double reconstruction_error(const torch::Tensor& x, const Subspace& s);

// Index of the subspace with the smallest reconstruction error of x (ties:
// the lowest index); -1 for an empty list.
int route(const torch::Tensor& x, const std::vector<const Subspace*>& subspaces);

}  // namespace sparc
