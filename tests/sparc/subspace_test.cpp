// Task subspaces (SPEC 1.1-1.4, 1.7) against independent references: data
// with a covariance known by construction, plain-loop sums and Eigen's
// eigensolver, SVD and least squares.
#include "sparc/subspace.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace sparc {
namespace {

using Mat = Eigen::MatrixXd;
using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Mat to_eigen(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat64).contiguous();
  if (c.dim() == 1) c = c.unsqueeze(0);
  return Eigen::Map<const RowMat>(c.data_ptr<double>(), c.size(0), c.size(1));
}

// Rows [k, D] of a random orthonormal basis.
torch::Tensor random_basis(std::int64_t k, std::int64_t d) {
  auto q = std::get<0>(torch::linalg_qr(torch::randn({d, k}, torch::kFloat64)));
  return q.t().contiguous();
}

Subspace make_subspace(const torch::Tensor& mu, const torch::Tensor& basis) {
  Subspace s;
  s.mu = mu;
  s.basis = basis;
  return s;
}

Subspace random_subspace(std::int64_t k, std::int64_t d) {
  return make_subspace(torch::randn({d}, torch::kFloat64), random_basis(k, d));
}

// Cosines of the principal angles between the row spaces of a and b.
Eigen::VectorXd principal_cosines(const Mat& a, const Mat& b) {
  return Eigen::JacobiSVD<Mat>(a * b.transpose()).singularValues();
}

// Covariance by the two-pass textbook formula, with plain loops.
Mat naive_covariance(const Mat& x, Eigen::VectorXd* mean_out = nullptr) {
  const auto n = x.rows(), d = x.cols();
  Eigen::VectorXd mean = Eigen::VectorXd::Zero(d);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index a = 0; a < d; ++a) mean(a) += x(i, a);
  mean /= double(n);
  Mat cov = Mat::Zero(d, d);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index a = 0; a < d; ++a)
      for (Eigen::Index b = 0; b < d; ++b) cov(a, b) += (x(i, a) - mean(a)) * (x(i, b) - mean(b));
  if (mean_out) *mean_out = mean;
  return cov / double(n);
}

double rel_diff(const Mat& a, const Mat& b) { return (a - b).norm() / std::max(1.0, b.norm()); }

void expect_sign_rule(const torch::Tensor& basis) {
  Mat w = to_eigen(basis);
  for (Eigen::Index i = 0; i < w.rows(); ++i) {
    Eigen::Index at;
    w.row(i).cwiseAbs().maxCoeff(&at);
    EXPECT_GT(w(i, at), 0) << "row " << i;
  }
}

// ---- PCA -------------------------------------------------------------------

// Points mu +/- sqrt(D lambda_i) r_i: mean mu and covariance
// sum_i lambda_i r_i r_i^T exactly, by construction.
TEST(Pca, KnownCovarianceByConstruction) {
  torch::manual_seed(1);
  const std::int64_t d = 8, k = 3;
  const std::vector<double> lambda = {9, 7, 5, 4, 3, 2, 1, 0.5};
  auto r = random_basis(d, d);
  auto mu = torch::randn({d}, torch::kFloat64) * 2;
  std::vector<torch::Tensor> rows;
  for (std::int64_t i = 0; i < d; ++i) {
    auto step = std::sqrt(double(d) * lambda[i]) * r[i];
    rows.push_back(mu + step);
    rows.push_back(mu - step);
  }
  auto x = torch::stack(rows);
  CovarianceAccumulator acc(d);
  acc.add(x);
  Subspace s = compute_subspace(acc, k);
  ASSERT_EQ(s.k(), k);
  ASSERT_EQ(s.dim(), d);

  // Against the construction.
  EXPECT_LT(rel_diff(to_eigen(s.mu), to_eigen(mu)), 1e-12);
  for (std::int64_t i = 0; i < k; ++i)
    EXPECT_NEAR(s.eigenvalues[i].item<double>(), lambda[i], 1e-9 * lambda[i]);
  auto cosines = principal_cosines(to_eigen(s.basis), to_eigen(r.narrow(0, 0, k)));
  for (Eigen::Index i = 0; i < k; ++i) EXPECT_NEAR(cosines(i), 1.0, 1e-6);
  double total = 0;
  for (double l : lambda) total += l;
  EXPECT_NEAR(s.explained_variance_ratio, (9.0 + 7.0 + 5.0) / total, 1e-12);

  // Against Eigen's full eigendecomposition of the plain-loop covariance.
  Eigen::SelfAdjointEigenSolver<Mat> ref(naive_covariance(to_eigen(x)));
  Mat w = to_eigen(s.basis);
  for (std::int64_t i = 0; i < k; ++i) {
    const Eigen::Index j = d - 1 - i;  // Eigen sorts ascending
    EXPECT_NEAR(s.eigenvalues[i].item<double>(), ref.eigenvalues()(j),
                1e-9 * ref.eigenvalues()(j));
    // Distinct eigenvalues: each eigenvector agrees up to sign.
    Eigen::VectorXd v = ref.eigenvectors().col(j);
    EXPECT_NEAR(std::abs(w.row(i).dot(v)), 1.0, 1e-9);
  }
  expect_sign_rule(s.basis);
}

TEST(Pca, RandomDataMatchesNaiveReference) {
  torch::manual_seed(2);
  const std::int64_t d = 12, n = 3000, k = 4;
  auto scales = torch::linspace(5.0, 0.5, d, torch::kFloat64);
  auto mu = torch::randn({d}, torch::kFloat64) * 3;
  auto x = mu + (torch::randn({n, d}, torch::kFloat64) * scales).matmul(random_basis(d, d));
  Mat xe = to_eigen(x);

  CovarianceAccumulator acc(d);
  acc.add(x);
  EXPECT_EQ(acc.count(), n);
  EXPECT_EQ(acc.dim(), d);
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(d);
  Mat outer = Mat::Zero(d, d);
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index a = 0; a < d; ++a) {
      sum(a) += xe(i, a);
      for (Eigen::Index b = 0; b < d; ++b) outer(a, b) += xe(i, a) * xe(i, b);
    }
  EXPECT_LT(rel_diff(to_eigen(acc.sum()), sum.transpose()), 1e-12);
  EXPECT_LT(rel_diff(to_eigen(acc.sum_outer()), outer), 1e-12);
  Eigen::VectorXd mean;
  Mat cov = naive_covariance(xe, &mean);
  EXPECT_LT(rel_diff(to_eigen(acc.mean()), mean.transpose()), 1e-12);
  EXPECT_LT(rel_diff(to_eigen(acc.covariance()), cov), 1e-10);

  Subspace s = compute_subspace(acc, k);
  Eigen::SelfAdjointEigenSolver<Mat> ref(cov);
  Mat ref_w(k, d);
  for (std::int64_t i = 0; i < k; ++i) {
    const double want = ref.eigenvalues()(d - 1 - i);
    EXPECT_NEAR(s.eigenvalues[i].item<double>(), want, 1e-9 * want);
    ref_w.row(i) = ref.eigenvectors().col(d - 1 - i).transpose();
  }
  auto cosines = principal_cosines(to_eigen(s.basis), ref_w);
  for (Eigen::Index i = 0; i < k; ++i) EXPECT_NEAR(cosines(i), 1.0, 1e-6);
  Mat w = to_eigen(s.basis);
  EXPECT_LT((w * w.transpose() - Mat::Identity(k, k)).norm(), 1e-12);
  expect_sign_rule(s.basis);

  // Chunked accumulation equals one add (up to summation order), and the
  // subspace it gives has the same signs.
  CovarianceAccumulator chunked(d);
  chunked.add(x.narrow(0, 0, 1000));
  chunked.add(x.narrow(0, 1000, 1));
  chunked.add(x.narrow(0, 1001, 0));
  chunked.add(x.narrow(0, 1001, n - 1001));
  EXPECT_EQ(chunked.count(), n);
  EXPECT_LT(rel_diff(to_eigen(chunked.sum()), to_eigen(acc.sum())), 1e-12);
  EXPECT_LT(rel_diff(to_eigen(chunked.sum_outer()), to_eigen(acc.sum_outer())), 1e-12);
  Subspace s2 = compute_subspace(chunked, k);
  EXPECT_LT(rel_diff(to_eigen(s2.basis), w), 1e-9);

  // The same sums give bitwise the same subspace.
  Subspace again = compute_subspace(acc, k);
  EXPECT_TRUE(torch::equal(again.basis, s.basis));
  EXPECT_TRUE(torch::equal(again.eigenvalues, s.eigenvalues));
}

TEST(Pca, Float32AndBf16RowsAccumulateInFloat64) {
  torch::manual_seed(3);
  const std::int64_t d = 6, n = 40000;  // more rows than one internal chunk (16,384)
  auto x = (torch::randn({n, d}) + 1.5).to(torch::kFloat32);
  Mat xe = to_eigen(x);  // the float32 values, exactly
  Eigen::VectorXd sum = Eigen::VectorXd::Zero(d);
  Mat outer = Mat::Zero(d, d);
  for (Eigen::Index i = 0; i < n; ++i) {
    sum += xe.row(i).transpose();
    outer += xe.row(i).transpose() * xe.row(i);
  }
  CovarianceAccumulator acc(d);
  acc.add(x);
  EXPECT_EQ(acc.count(), n);
  EXPECT_EQ(acc.sum().scalar_type(), torch::kFloat64);
  // Sums and products are formed in float32 over chunks of at most 16,384
  // rows and the chunk results added in float64: each chunk's rounding is
  // that of a float32 sum of 16,384 terms of one sign (typically ~1e-6
  // relative; the bound n * eps = 2e-3 is never approached by random data),
  // far below what the float32 inputs could support with one float32 sum
  // over all rows.
  const double tol = 2e-5;
  EXPECT_LT(rel_diff(to_eigen(acc.sum()), sum.transpose()), tol);
  EXPECT_LT(rel_diff(to_eigen(acc.sum_outer()), outer), tol);

  auto xb = x.to(torch::kBFloat16);
  CovarianceAccumulator accb(d);
  accb.add(xb);
  Mat xbe = to_eigen(xb);
  EXPECT_LT(rel_diff(to_eigen(accb.sum()), xbe.colwise().sum()), tol);
  EXPECT_LT(rel_diff(to_eigen(accb.sum_outer()), xbe.transpose() * xbe), tol);
}

TEST(Pca, PackUnpackRoundTripAndSumOfPacks) {
  torch::manual_seed(4);
  const std::int64_t d = 5;
  auto a = torch::randn({40, d}, torch::kFloat64) + 1;
  auto b = torch::randn({25, d}, torch::kFloat64) - 2;
  CovarianceAccumulator acc_a(d), acc_b(d), both(d);
  acc_a.add(a);
  acc_b.add(b);
  both.add(torch::cat({a, b}));

  auto packed = acc_a.pack();
  EXPECT_EQ(packed.scalar_type(), torch::kFloat64);
  EXPECT_EQ(packed.numel(), d + d * d + 1);
  CovarianceAccumulator copy(d);
  copy.unpack(packed);
  EXPECT_EQ(copy.count(), 40);
  EXPECT_TRUE(torch::equal(copy.sum(), acc_a.sum()));
  EXPECT_TRUE(torch::equal(copy.sum_outer(), acc_a.sum_outer()));

  // What an all-reduce (sum) of two ranks' packs yields.
  CovarianceAccumulator reduced(d);
  reduced.unpack(acc_a.pack() + acc_b.pack());
  EXPECT_EQ(reduced.count(), 65);
  EXPECT_LT(rel_diff(to_eigen(reduced.covariance()), to_eigen(both.covariance())), 1e-12);

  EXPECT_THROW(copy.unpack(torch::zeros({d + d * d}, torch::kFloat64)), InputError);
  auto bad = packed.clone();
  bad[d + d * d] = -1.0;
  EXPECT_THROW(copy.unpack(bad), InputError);
  bad[d + d * d] = 2.5;
  EXPECT_THROW(copy.unpack(bad), InputError);
}

TEST(Pca, BadInputsAreInputErrors) {
  CovarianceAccumulator empty(4);
  EXPECT_THROW(compute_subspace(empty, 2), InputError);
  EXPECT_THROW(empty.mean(), InputError);
  EXPECT_THROW(empty.add(torch::zeros({3, 5})), InputError);
  EXPECT_THROW(empty.add(torch::zeros({4})), InputError);
  EXPECT_THROW(CovarianceAccumulator(0), InputError);
  CovarianceAccumulator acc(4);
  acc.add(torch::randn({10, 4}));
  EXPECT_THROW(compute_subspace(acc, 5), InputError);
  EXPECT_THROW(compute_subspace(acc, 0), InputError);
  EXPECT_NO_THROW(compute_subspace(acc, 4));
}

// ---- Similarity ------------------------------------------------------------

TEST(Similarity, KnownValues) {
  torch::manual_seed(5);
  const std::int64_t d = 10, k = 3;
  auto w = random_basis(k, d);
  EXPECT_NEAR(subspace_similarity(w, w), 1.0, 1e-12);
  // Another orthonormal basis of the same subspace.
  auto rotated = random_basis(k, k).matmul(w);
  EXPECT_NEAR(subspace_similarity(w, rotated), 1.0, 1e-12);

  auto eye = torch::eye(d, torch::kFloat64);
  EXPECT_NEAR(subspace_similarity(eye.narrow(0, 0, 3), eye.narrow(0, 3, 3)), 0.0, 1e-15);
  // span(e0, e1) vs span(e0, e2): principal angles 0 and 90 degrees.
  auto b = torch::stack({eye[0], eye[2]});
  EXPECT_NEAR(subspace_similarity(eye.narrow(0, 0, 2), b), 0.5, 1e-15);
  // Two lines at 60 degrees: cos^2 = 1/4.
  const double pi = std::acos(-1.0);
  auto l1 = torch::zeros({1, d}, torch::kFloat64);
  auto l2 = torch::zeros({1, d}, torch::kFloat64);
  l1[0][0] = 1.0;
  l2[0][0] = std::cos(pi / 3);
  l2[0][1] = std::sin(pi / 3);
  EXPECT_NEAR(subspace_similarity(l1, l2), 0.25, 1e-15);

  auto u = random_basis(k, d), v = random_basis(k, d);
  const double uv = subspace_similarity(u, v);
  EXPECT_NEAR(uv, subspace_similarity(v, u), 1e-15);
  EXPECT_GT(uv, 0.0);
  EXPECT_LT(uv, 1.0);
  // Independently: mean of squared cosines of the principal angles.
  EXPECT_NEAR(uv, principal_cosines(to_eigen(u), to_eigen(v)).squaredNorm() / k, 1e-12);

  EXPECT_THROW(subspace_similarity(u, random_basis(k + 1, d)), InputError);
}

// ---- Prompts and reuse -----------------------------------------------------

TEST(Prompt, EmbeddingsAreDifferentiableAffineMap) {
  torch::manual_seed(6);
  Subspace s = random_subspace(4, 12);
  auto z = torch::randn({3, 4}, torch::kFloat32).requires_grad_(true);
  auto p = prompt_embeddings(z, s);
  EXPECT_EQ(p.scalar_type(), torch::kFloat32);
  ASSERT_EQ(p.sizes(), (std::vector<std::int64_t>{3, 12}));
  Mat expect = to_eigen(z) * to_eigen(s.basis);
  expect.rowwise() += to_eigen(s.mu).row(0);
  EXPECT_LT(rel_diff(to_eigen(p), expect), 1e-6);
  // d(sum p)/dZ = rows of W summed.
  p.sum().backward();
  Eigen::VectorXd row_sums = to_eigen(s.basis).rowwise().sum();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      EXPECT_NEAR(z.grad()[i][j].item<double>(), row_sums(j), 1e-5);
  EXPECT_THROW(prompt_embeddings(torch::randn({3, 5}), s), InputError);
}

TEST(Reuse, IsTheProjectionOntoTheAffineSubspace) {
  torch::manual_seed(7);
  const std::int64_t d = 16, k = 5, p = 4;
  Subspace s = random_subspace(k, d);
  auto prompt = torch::randn({p, d}, torch::kFloat64) * 2;
  auto z = reuse_init(prompt, s);
  ASSERT_EQ(z.sizes(), (std::vector<std::int64_t>{p, k}));
  auto emb = prompt_embeddings(z, s);

  // Independently: least-squares fit of each centred row by the basis vectors.
  Mat wt = to_eigen(s.basis).transpose();  // [D, k]
  Eigen::VectorXd mu = to_eigen(s.mu).row(0).transpose();
  Mat pe = to_eigen(prompt), ee = to_eigen(emb);
  for (Eigen::Index i = 0; i < p; ++i) {
    Eigen::VectorXd centred = pe.row(i).transpose() - mu;
    Eigen::VectorXd c = wt.householderQr().solve(centred);
    Eigen::VectorXd closest = mu + wt * c;
    EXPECT_LT((ee.row(i).transpose() - closest).norm(), 1e-12 * closest.norm());
  }

  // A prompt inside the subspace is reproduced, coefficients and all.
  auto coeffs = torch::randn({p, k}, torch::kFloat64);
  auto inside = s.mu + coeffs.matmul(s.basis);
  auto z_in = reuse_init(inside, s);
  EXPECT_LT(rel_diff(to_eigen(z_in), to_eigen(coeffs)), 1e-12);
  EXPECT_LT(rel_diff(to_eigen(prompt_embeddings(z_in, s)), to_eigen(inside)), 1e-12);

  // project keeps the dtype of its input.
  EXPECT_EQ(project(prompt.to(torch::kFloat32), s).scalar_type(), torch::kFloat32);
}

// ---- Orthogonal initialisation ---------------------------------------------

struct Library {
  std::vector<Subspace> spaces;
  std::vector<torch::Tensor> prompts;  // Z_j
  std::vector<StoredPrompt> stored() const {
    std::vector<StoredPrompt> out;
    for (size_t j = 0; j < spaces.size(); ++j) out.push_back({prompts[j], &spaces[j]});
    return out;
  }
};

Library random_library(int tasks, std::int64_t p, std::int64_t k, std::int64_t d) {
  Library lib;
  lib.spaces.reserve(tasks);
  for (int j = 0; j < tasks; ++j) {
    lib.spaces.push_back(random_subspace(k, d));
    lib.prompts.push_back(torch::randn({p, k}, torch::kFloat64));
  }
  return lib;
}

// ||Z W (Z_j W_j)^T||_F, from the definition.
double overlap(const Mat& z, const Subspace& target, const torch::Tensor& zj, const Subspace& sj) {
  return ((z * to_eigen(target.basis)) * (to_eigen(zj) * to_eigen(sj.basis)).transpose()).norm();
}

// B = [Z_j W_j W^T]_j, built in Eigen.
Mat stacked_b(const Library& lib, const Subspace& target) {
  std::vector<Mat> blocks;
  Eigen::Index rows = 0;
  for (size_t j = 0; j < lib.spaces.size(); ++j) {
    blocks.push_back(to_eigen(lib.prompts[j]) * to_eigen(lib.spaces[j].basis) *
                     to_eigen(target.basis).transpose());
    rows += blocks.back().rows();
  }
  Mat b(rows, target.k());
  Eigen::Index at = 0;
  for (const auto& blk : blocks) {
    b.middleRows(at, blk.rows()) = blk;
    at += blk.rows();
  }
  return b;
}

TEST(OrthogonalInit, RemovesEveryStoredDirectionWhileCapacityAllows) {
  torch::manual_seed(8);
  const std::int64_t d = 32, k = 10, p = 3;
  Subspace target = random_subspace(k, d);
  Library lib = random_library(3, 2, 6, d);  // B has rank 6 <= k - P = 7
  auto z0 = torch::randn({p, k}, torch::kFloat64);
  OrthogonalInit init = orthogonal_init(z0, target, lib.stored());
  EXPECT_FALSE(init.capped);
  EXPECT_EQ(init.directions, 6);
  Mat z = to_eigen(init.z);
  Mat zw0 = to_eigen(z0) * to_eigen(target.basis);
  for (size_t j = 0; j < lib.spaces.size(); ++j) {
    const double scale = zw0.norm() * (to_eigen(lib.prompts[j]) * to_eigen(lib.spaces[j].basis)).norm();
    EXPECT_LT(overlap(z, target, lib.prompts[j], lib.spaces[j]), 1e-10 * scale) << "task " << j;
    EXPECT_GT(overlap(to_eigen(z0), target, lib.prompts[j], lib.spaces[j]), 1e-3 * scale);
  }
  EXPECT_LT(init.residual_overlap, 1e-10 * zw0.norm());

  // The result is z0 minus its orthogonal projection onto B's row space (pseudo-inverse).
  Mat b = stacked_b(lib, target);
  Mat projector = b.completeOrthogonalDecomposition().pseudoInverse() * b;
  Mat expect = to_eigen(z0) * (Mat::Identity(k, k) - projector);
  EXPECT_LT(rel_diff(z, expect), 1e-10);

  // The regulariser agrees that nothing overlaps.
  EXPECT_LT(orthogonality_penalty(init.z, target, lib.stored()).item<double>(),
            1e-20 * zw0.squaredNorm());

  // Float32 in, float32 out.
  auto init32 = orthogonal_init(z0.to(torch::kFloat32), target, lib.stored());
  EXPECT_EQ(init32.z.scalar_type(), torch::kFloat32);
  EXPECT_LT(rel_diff(to_eigen(init32.z), expect), 1e-6);

  // Nothing stored: unchanged.
  auto none = orthogonal_init(z0, target, {});
  EXPECT_TRUE(torch::equal(none.z, z0));
  EXPECT_EQ(none.directions, 0);
  EXPECT_FALSE(none.capped);
  EXPECT_EQ(none.residual_overlap, 0.0);
}

TEST(OrthogonalInit, CapKeepsTheTopSingularDirections) {
  torch::manual_seed(9);
  const std::int64_t d = 32, k = 8, p = 3;
  Subspace target = random_subspace(k, d);
  Library lib = random_library(3, 2, 6, d);  // B has rank 6 > k - P = 5
  auto z0 = torch::randn({p, k}, torch::kFloat64);
  OrthogonalInit init = orthogonal_init(z0, target, lib.stored());
  EXPECT_TRUE(init.capped);
  EXPECT_EQ(init.directions, k - p);

  Mat z = to_eigen(init.z);
  Eigen::JacobiSVD<Mat> svd(stacked_b(lib, target), Eigen::ComputeThinV);
  Mat top = svd.matrixV().leftCols(k - p);  // [k, k - P]
  EXPECT_LT((z * top).norm(), 1e-10 * to_eigen(z0).norm());
  // Only those directions were removed.
  EXPECT_LT(rel_diff(z, to_eigen(z0) - to_eigen(z0) * top * top.transpose()), 1e-10);

  double worst = 0;
  for (size_t j = 0; j < lib.spaces.size(); ++j)
    worst = std::max(worst, overlap(z, target, lib.prompts[j], lib.spaces[j]));
  EXPECT_GT(init.residual_overlap, 1e-6);
  EXPECT_NEAR(init.residual_overlap, worst, 1e-10 * worst);
}

TEST(OrthogonalInit, PenaltyMatchesDefinitionAndFiniteDifferences) {
  torch::manual_seed(10);
  const std::int64_t d = 20, k = 6, p = 4;
  Subspace target = random_subspace(k, d);
  Library lib = random_library(2, 3, 5, d);
  auto z = torch::randn({p, k}, torch::kFloat64);

  double expect = 0;
  for (size_t j = 0; j < lib.spaces.size(); ++j)
    expect += std::pow(overlap(to_eigen(z), target, lib.prompts[j], lib.spaces[j]), 2);
  auto zg = z.clone().requires_grad_(true);
  auto penalty = orthogonality_penalty(zg, target, lib.stored());
  EXPECT_EQ(penalty.dim(), 0);
  EXPECT_NEAR(penalty.item<double>(), expect, 1e-12 * expect);
  EXPECT_DOUBLE_EQ(orthogonality_penalty(z, target, {}).item<double>(), 0.0);

  penalty.backward();
  const double h = 1e-6;
  for (std::int64_t i = 0; i < p; ++i)
    for (std::int64_t j = 0; j < k; ++j) {
      auto plus = z.clone(), minus = z.clone();
      plus[i][j] += h;
      minus[i][j] -= h;
      const double fd = (orthogonality_penalty(plus, target, lib.stored()).item<double>() -
                         orthogonality_penalty(minus, target, lib.stored()).item<double>()) /
                        (2 * h);
      EXPECT_NEAR(zg.grad()[i][j].item<double>(), fd, 1e-6 * std::max(1.0, std::abs(fd)));
    }
}

// ---- Routing ---------------------------------------------------------------

TEST(Routing, ReconstructionErrorByHand) {
  Subspace line = make_subspace(torch::zeros({2}, torch::kFloat64),
                                torch::tensor({{1.0, 0.0}}, torch::kFloat64));
  auto x = torch::tensor({{3.0, 4.0}, {1.0, 2.0}}, torch::kFloat64);
  EXPECT_DOUBLE_EQ(reconstruction_error(x, line), (16.0 + 4.0) / 2);
  Subspace shifted = make_subspace(torch::tensor({0.0, 1.0}, torch::kFloat64), line.basis);
  EXPECT_DOUBLE_EQ(reconstruction_error(x, shifted), (9.0 + 1.0) / 2);
  EXPECT_THROW(reconstruction_error(x.narrow(0, 0, 0), line), InputError);
  EXPECT_EQ(route(x, {}), -1);
  EXPECT_EQ(route(x, {&line, &line}), 0);  // ties go to the lowest index
}

TEST(Routing, ExamplesRouteToTheSubspaceTheyCameFrom) {
  torch::manual_seed(11);
  const std::int64_t d = 16, k = 3;
  Subspace truth[2] = {random_subspace(k, d), random_subspace(k, d)};
  auto sample = [&](const Subspace& s, std::int64_t n) {
    return s.mu + torch::randn({n, k}, torch::kFloat64).matmul(s.basis) * 2 +
           torch::randn({n, d}, torch::kFloat64) * 0.01;
  };
  // Each task's subspace from PCA of its own data, as in training.
  std::vector<Subspace> learned;
  for (const auto& t : truth) {
    CovarianceAccumulator acc(d);
    acc.add(sample(t, 500));
    learned.push_back(compute_subspace(acc, k));
  }
  std::vector<const Subspace*> library = {&learned[0], &learned[1]};
  for (int task = 0; task < 2; ++task)
    for (int example = 0; example < 20; ++example) {
      auto x = sample(truth[task], 8).to(torch::kFloat32);  // token embeddings as a model has them
      EXPECT_EQ(route(x, library), task) << "task " << task << " example " << example;
      EXPECT_LT(reconstruction_error(x, learned[task]), 0.01);
    }
}

}  // namespace
}  // namespace sparc
