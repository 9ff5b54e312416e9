#include "sparc/subspace.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>

#include "core/error.h"

namespace sparc {
namespace {

// LAPACK's eigensolver (OpenBLAS's, threaded) splits its work, and with it
// the rounding, by the thread count: measured, the tiny configs' bases
// differed by ~4e-15 between --threads 1 and 2. One thread for the solve
// makes the basis the same whatever a rank's thread count (it is a small
// part of a run: D x D, once per task).
class OneSolverThread {
 public:
  OneSolverThread() : torch_threads_(torch::get_num_threads()) {
    get_ = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    set_ = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    if (get_ && set_) {
      blas_threads_ = get_();
      set_(1);
    }
    torch::set_num_threads(1);
  }
  ~OneSolverThread() {
    torch::set_num_threads(torch_threads_);
    if (get_ && set_) set_(blas_threads_);
  }
  OneSolverThread(const OneSolverThread&) = delete;
  OneSolverThread& operator=(const OneSolverThread&) = delete;

 private:
  int torch_threads_, blas_threads_ = 1;
  int (*get_)() = nullptr;
  void (*set_)(int) = nullptr;
};

constexpr auto kF64 = torch::kFloat64;

// Rows per float32 product: each chunk's rounding stays that of a sum of
// ~16k terms (relative error ~1e-6 for the covariances PCA sees), while the
// totals over millions of rows grow in float64. Smaller chunks cost speed:
// BLAS streams a tall operand best in long panels (bench pca, D=512, 2
// threads: 85 GFLOP/s with 4,096-row chunks, 150 with 16,384).
constexpr std::int64_t kChunkRows = 16384;

// Singular values of B below this fraction of the largest are rounding, not
// stored prompt directions.
constexpr double kRankTolerance = 1e-10;

std::string shape_str(c10::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

void check_matrix(const torch::Tensor& t, std::int64_t cols, const std::string& where,
                  const std::string& name) {
  if (!t.defined() || t.dim() != 2 || t.size(1) != cols)
    throw InputError(where, name + " must be [n, " + std::to_string(cols) + "], got " +
                                (t.defined() ? shape_str(t.sizes()) : "undefined"));
  if (!t.is_floating_point()) throw InputError(where, name + " must be floating point");
}

void check_subspace(const Subspace& s, const std::string& where) {
  if (!s.basis.defined() || !s.mu.defined() || s.basis.dim() != 2 || s.mu.dim() != 1 ||
      s.mu.size(0) != s.dim())
    throw InputError(where, "subspace is incomplete or inconsistent (need mu [D], basis [k, D])");
}

// The frozen parts of a subspace in float64 on `device`.
torch::Tensor mu_on(const Subspace& s, torch::Device device) { return s.mu.to(device, kF64); }
torch::Tensor basis_on(const Subspace& s, torch::Device device) {
  return s.basis.to(device, kF64);
}

// B_j = Z_j W_j W^T [P_j, k] for every stored prompt, in f64 on the CPU:
// the stored prompt directions (centred) expressed in the target basis.
std::vector<torch::Tensor> stored_in_target(const Subspace& target,
                                            const std::vector<StoredPrompt>& stored,
                                            const std::string& where) {
  std::vector<torch::Tensor> out;
  const auto w = basis_on(target, torch::kCPU);
  for (size_t j = 0; j < stored.size(); ++j) {
    const std::string name = "stored prompt " + std::to_string(j);
    if (stored[j].subspace == nullptr) throw InputError(where, name + " has no subspace");
    const Subspace& sj = *stored[j].subspace;
    check_subspace(sj, where);
    if (sj.dim() != target.dim())
      throw InputError(where, name + " lives in dimension " + std::to_string(sj.dim()) +
                                  ", the target in " + std::to_string(target.dim()));
    check_matrix(stored[j].z, sj.k(), where, name);
    auto zj = stored[j].z.detach().to(torch::kCPU, kF64);
    out.push_back(zj.matmul(basis_on(sj, torch::kCPU)).matmul(w.t()));
  }
  return out;
}

}  // namespace

CovarianceAccumulator::CovarianceAccumulator(std::int64_t dim) : dim_(dim) {
  if (dim < 1) throw InputError("pca", "dimension must be positive, got " + std::to_string(dim));
  sum_ = torch::zeros({dim}, kF64);
  sum_outer_ = torch::zeros({dim, dim}, kF64);
}

void CovarianceAccumulator::add(const torch::Tensor& rows) {
  check_matrix(rows, dim_, "pca", "rows");
  torch::NoGradGuard no_grad;
  // bf16/f16 values are exact in float32, so only the chunk sums round there.
  const auto ct = rows.scalar_type() == kF64 ? kF64 : torch::kFloat32;
  const std::int64_t n = rows.size(0);
  for (std::int64_t start = 0; start < n; start += kChunkRows) {
    auto chunk = rows.narrow(0, start, std::min(kChunkRows, n - start)).to(ct);
    // Both sums in the chunk's precision, then added in place into the f64
    // totals (a cast inside sum() would make the column sum a strided f64
    // reduction costing half as much as the product itself).
    sum_.add_(chunk.sum(0).to(torch::kCPU));
    sum_outer_.add_(chunk.t().matmul(chunk).to(torch::kCPU));
  }
  n_ += n;
}

torch::Tensor CovarianceAccumulator::pack() const {
  return torch::cat(
      {sum_, sum_outer_.flatten(), torch::full({1}, static_cast<double>(n_), kF64)});
}

void CovarianceAccumulator::unpack(const torch::Tensor& packed) {
  const std::int64_t want = dim_ + dim_ * dim_ + 1;
  if (!packed.defined() || packed.dim() != 1 || packed.size(0) != want)
    throw InputError("pca", "packed sums must be [" + std::to_string(want) + "], got " +
                                (packed.defined() ? shape_str(packed.sizes()) : "undefined"));
  auto p = packed.detach().to(torch::kCPU, kF64).contiguous();
  const double n = p[want - 1].item<double>();
  if (!(n >= 0) || n != std::floor(n) || n > double(std::numeric_limits<std::int64_t>::max()))
    throw InputError("pca", "packed count is not a non-negative integer: " + std::to_string(n));
  sum_ = p.narrow(0, 0, dim_).clone();
  sum_outer_ = p.narrow(0, dim_, dim_ * dim_).view({dim_, dim_}).clone();
  n_ = static_cast<std::int64_t>(n);
}

torch::Tensor CovarianceAccumulator::mean() const {
  if (n_ == 0) throw InputError("pca", "no vectors were accumulated");
  return sum_ / static_cast<double>(n_);
}

torch::Tensor CovarianceAccumulator::covariance() const {
  auto mu = mean();
  auto c = sum_outer_ / static_cast<double>(n_) - torch::outer(mu, mu);
  // A BLAS product x^T x need not be bitwise symmetric.
  return (c + c.t()) * 0.5;
}

Subspace compute_subspace(const CovarianceAccumulator& acc, std::int64_t k) {
  const std::int64_t d = acc.dim();
  if (k < 1 || k > d)
    throw InputError("pca", "k = " + std::to_string(k) + " must be in [1, " + std::to_string(d) +
                                "] (the vector dimension)");
  torch::NoGradGuard no_grad;
  auto cov = acc.covariance();  // throws when n == 0
  if (!torch::isfinite(cov).all().item<bool>())
    throw InputError("pca", "the covariance has non-finite entries (NaN or infinite inputs)");
  torch::Tensor values, vectors;
  {
    OneSolverThread one;
    std::tie(values, vectors) = torch::linalg_eigh(cov, "L");  // ascending; eigenvectors in columns
  }
  auto top = torch::arange(d - 1, d - 1 - k, -1, torch::kLong);

  Subspace s;
  s.mu = acc.mean();
  // The covariance is positive semi-definite: negative eigenvalues are rounding.
  s.eigenvalues = values.index_select(0, top).clamp_min(0);
  auto basis = vectors.index_select(1, top).t().contiguous();
  // An eigenvector's sign is arbitrary; this rule makes it a function of the covariance.
  auto largest = basis.gather(1, basis.abs().argmax(1, /*keepdim=*/true));
  s.basis = (basis * largest.sign()).contiguous();  // nonzero: the largest entry of a unit vector
  const double trace = cov.trace().item<double>();
  // A zero covariance leaves nothing unexplained.
  s.explained_variance_ratio =
      trace > 0 ? std::min(1.0, s.eigenvalues.sum().item<double>() / trace) : 1.0;
  return s;
}

double subspace_similarity(const torch::Tensor& basis_a, const torch::Tensor& basis_b) {
  if (!basis_a.defined() || !basis_b.defined() || basis_a.dim() != 2 ||
      basis_a.sizes() != basis_b.sizes() || basis_a.size(0) == 0)
    throw InputError("subspace similarity",
                     "bases must have the same shape [k, D] with k >= 1, got " +
                         (basis_a.defined() ? shape_str(basis_a.sizes()) : "undefined") +
                         " and " + (basis_b.defined() ? shape_str(basis_b.sizes()) : "undefined"));
  torch::NoGradGuard no_grad;
  auto a = basis_a.to(torch::kCPU, kF64);
  auto b = basis_b.to(torch::kCPU, kF64);
  const double s = a.matmul(b.t()).pow(2).sum().item<double>() / double(a.size(0));
  return std::clamp(s, 0.0, 1.0);  // outside only by rounding
}

torch::Tensor project(const torch::Tensor& x, const Subspace& s) {
  check_subspace(s, "project");
  check_matrix(x, s.dim(), "project", "points");
  const auto dev = x.device();
  return (x.to(kF64) - mu_on(s, dev)).matmul(basis_on(s, dev).t()).to(x.scalar_type());
}

torch::Tensor prompt_embeddings(const torch::Tensor& z, const Subspace& s) {
  check_subspace(s, "prompt_embeddings");
  check_matrix(z, s.k(), "prompt_embeddings", "coefficients");
  const auto opts = torch::TensorOptions().device(z.device()).dtype(z.scalar_type());
  return torch::addmm(s.mu.to(opts), z, s.basis.to(opts));
}

torch::Tensor reuse_init(const torch::Tensor& prompt_j, const Subspace& target) {
  return project(prompt_j, target);
}

OrthogonalInit orthogonal_init(const torch::Tensor& z_new, const Subspace& target,
                               const std::vector<StoredPrompt>& stored) {
  const std::string where = "orthogonal init";
  check_subspace(target, where);
  check_matrix(z_new, target.k(), where, "new coefficients");
  torch::NoGradGuard no_grad;
  const auto blocks = stored_in_target(target, stored, where);
  auto z = z_new.detach().to(torch::kCPU, kF64);
  OrthogonalInit out;

  auto b = blocks.empty() ? torch::zeros({0, target.k()}, kF64) : torch::cat(blocks, 0);
  if (b.size(0) > 0) {
    // Rows of Vh span B's row space, by decreasing singular value.
    auto [u, sv, vh] = torch::linalg_svd(b, /*full_matrices=*/false);
    const double cutoff = kRankTolerance * sv[0].item<double>();
    const std::int64_t rank = (sv > cutoff).sum().item<std::int64_t>();
    // P directions must remain for the new prompt itself.
    const std::int64_t room = std::max<std::int64_t>(0, target.k() - z.size(0));
    out.directions = std::min(rank, room);
    out.capped = rank > room;
    auto q = vh.narrow(0, 0, out.directions);
    z = z - z.matmul(q.t()).matmul(q);
  }
  // Z W (Z_j W_j)^T = Z (Z_j W_j W^T)^T = Z B_j^T.
  for (const auto& bj : blocks)
    out.residual_overlap = std::max(out.residual_overlap, z.matmul(bj.t()).norm().item<double>());
  out.z = z.to(z_new.device(), z_new.scalar_type());
  return out;
}

torch::Tensor orthogonality_penalty(const torch::Tensor& z, const Subspace& target,
                                    const std::vector<StoredPrompt>& stored) {
  const std::string where = "orthogonality penalty";
  check_subspace(target, where);
  check_matrix(z, target.k(), where, "coefficients");
  std::vector<torch::Tensor> blocks;
  {
    torch::NoGradGuard no_grad;  // the stored prompts are constants
    blocks = stored_in_target(target, stored, where);
  }
  auto total = torch::zeros({}, torch::TensorOptions().device(z.device()).dtype(z.scalar_type()));
  for (const auto& bj : blocks)
    total = total + z.matmul(bj.to(z.device(), z.scalar_type()).t()).pow(2).sum();
  return total;
}

double reconstruction_error(const torch::Tensor& x, const Subspace& s) {
  check_subspace(s, "routing");
  check_matrix(x, s.dim(), "routing", "token embeddings");
  if (x.size(0) == 0) throw InputError("routing", "no token embeddings to route");
  torch::NoGradGuard no_grad;
  const auto dev = x.device();
  auto w = basis_on(s, dev);
  auto c = x.to(kF64) - mu_on(s, dev);
  // The residual directly, not ||c||^2 - ||c W^T||^2, which cancels for points near the subspace.
  auto r = c - c.matmul(w.t()).matmul(w);
  return r.pow(2).sum().item<double>() / double(x.size(0));
}

int route(const torch::Tensor& x, const std::vector<const Subspace*>& subspaces) {
  int best = -1;
  double best_error = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < subspaces.size(); ++i) {
    if (subspaces[i] == nullptr)
      throw InputError("routing", "subspace " + std::to_string(i) + " is missing");
    const double e = reconstruction_error(x, *subspaces[i]);
    if (best < 0 || e < best_error) {
      best = static_cast<int>(i);
      best_error = e;
    }
  }
  return best;
}

}  // namespace sparc
