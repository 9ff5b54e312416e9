#include "naive_reference.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>

namespace naive {
namespace {

using Vec = std::vector<double>;

const std::vector<float>& get(const Weights& w, const std::string& name) {
  auto it = w.find(name);
  if (it == w.end()) throw std::runtime_error("naive: missing " + name);
  return it->second;
}
bool has(const Weights& w, const std::string& name) { return w.count(name) != 0; }

// y = W x (+ b), W row-major [out, in].
Vec matvec(const std::vector<float>& W, const Vec& x, size_t out, const std::vector<float>* b) {
  const size_t in = x.size();
  Vec y(out, 0.0);
  for (size_t o = 0; o < out; ++o) {
    double s = b ? (*b)[o] : 0.0;
    for (size_t i = 0; i < in; ++i) s += double(W[o * in + i]) * x[i];
    y[o] = s;
  }
  return y;
}

Vec linear(const Weights& w, const std::string& p, const Vec& x, size_t out) {
  const std::vector<float>* b = has(w, p + ".bias") ? &get(w, p + ".bias") : nullptr;
  return matvec(get(w, p + ".weight"), x, out, b);
}

Vec rmsnorm(const Vec& x, const std::vector<float>& g, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  double scale = 1.0 / std::sqrt(ss / x.size() + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * g[i];
  return y;
}

Vec layernorm(const Vec& x, const std::vector<float>& g, const std::vector<float>& b, double eps) {
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= x.size();
  for (double v : x) var += (v - mean) * (v - mean);
  var /= x.size();
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = (x[i] - mean) / std::sqrt(var + eps) * g[i] + b[i];
  return y;
}

Vec norm(const sparc::ModelConfig& c, const Weights& w, const std::string& p, const Vec& x) {
  if (c.arch == sparc::Arch::kGpt2)
    return layernorm(x, get(w, p + ".weight"), get(w, p + ".bias"), c.norm_eps);
  return rmsnorm(x, get(w, p + ".weight"), c.norm_eps);
}

// Half-split rotation of every head of v at position pos.
void rope_half(Vec& v, int heads, int hd, int pos, double theta) {
  for (int h = 0; h < heads; ++h)
    for (int j = 0; j < hd / 2; ++j) {
      double freq = std::pow(theta, -2.0 * j / hd);
      double a = pos * freq, co = std::cos(a), si = std::sin(a);
      double& x1 = v[h * hd + j];
      double& x2 = v[h * hd + hd / 2 + j];
      double r1 = x1 * co - x2 * si, r2 = x2 * co + x1 * si;
      x1 = r1;
      x2 = r2;
    }
}

double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
double silu(double x) { return x / (1.0 + std::exp(-x)); }

}  // namespace

std::vector<double> embedding(const sparc::ModelConfig& c, const Weights& w, int token) {
  const auto& E = get(w, "tok_embeddings");
  return Vec(E.begin() + size_t(token) * c.dim, E.begin() + size_t(token + 1) * c.dim);
}

Matrix forward(const sparc::ModelConfig& c, const Weights& w, const Matrix& inputs) {
  const int S = int(inputs.size()), D = int(c.dim), H = int(c.n_heads), KV = int(c.n_kv_heads);
  const int hd = int(c.head_dim);
  const bool gpt2 = c.arch == sparc::Arch::kGpt2;
  Matrix x = inputs;
  if (gpt2) {
    const auto& P = get(w, "pos_embeddings");
    for (int t = 0; t < S; ++t)
      for (int i = 0; i < D; ++i) x[t][i] += P[size_t(t) * D + i];
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    Matrix q(S), k(S), v(S);
    for (int t = 0; t < S; ++t) {
      Vec h = norm(c, w, p + "attn_norm", x[t]);
      q[t] = linear(w, p + "q", h, c.q_dim());
      k[t] = linear(w, p + "k", h, c.kv_dim());
      v[t] = linear(w, p + "v", h, c.kv_dim());
      if (!gpt2) {
        rope_half(q[t], H, hd, t, c.rope_theta);
        rope_half(k[t], KV, hd, t, c.rope_theta);
      }
    }
    for (int t = 0; t < S; ++t) {
      Vec att(size_t(H) * hd, 0.0);
      for (int h = 0; h < H; ++h) {
        const int g = h / (H / KV);  // the key/value head this query head reads
        Vec score(t + 1);
        double mx = -1e300;
        for (int s = 0; s <= t; ++s) {
          double d = 0;
          for (int i = 0; i < hd; ++i) d += q[t][h * hd + i] * k[s][g * hd + i];
          score[s] = d / std::sqrt(double(hd));
          mx = std::max(mx, score[s]);
        }
        double z = 0;
        for (double& e : score) z += (e = std::exp(e - mx));
        for (int s = 0; s <= t; ++s)
          for (int i = 0; i < hd; ++i) att[h * hd + i] += score[s] / z * v[s][g * hd + i];
      }
      Vec o = linear(w, p + "o", att, D);
      for (int i = 0; i < D; ++i) x[t][i] += o[i];
      Vec m = norm(c, w, p + "mlp_norm", x[t]);
      Vec hidden;
      if (gpt2) {
        hidden = linear(w, p + "up", m, c.ffn_dim);
        for (double& e : hidden) e = gelu_tanh(e);
      } else {
        Vec gate = linear(w, p + "gate", m, c.ffn_dim), up = linear(w, p + "up", m, c.ffn_dim);
        hidden.resize(gate.size());
        for (size_t i = 0; i < gate.size(); ++i) hidden[i] = silu(gate[i]) * up[i];
      }
      Vec down = linear(w, p + "down", hidden, D);
      for (int i = 0; i < D; ++i) x[t][i] += down[i];
    }
  }
  const auto& head = has(w, "lm_head.weight") ? get(w, "lm_head.weight") : get(w, "tok_embeddings");
  Matrix logits;
  for (int t = 0; t < S; ++t) logits.push_back(matvec(head, norm(c, w, "norm", x[t]), c.vocab_size, nullptr));
  return logits;
}

Matrix llama2c_forward(const std::string& bin_path, const std::vector<int>& tokens) {
  FILE* f = std::fopen(bin_path.c_str(), "rb");
  if (!f) throw std::runtime_error("naive: cannot open " + bin_path);
  int32_t hdr[7];
  if (std::fread(hdr, sizeof(int32_t), 7, f) != 7) throw std::runtime_error("naive: header");
  const int D = hdr[0], F = hdr[1], L = hdr[2], H = hdr[3], KV = hdr[4], T = hdr[6];
  const bool shared = hdr[5] > 0;
  const int V = std::abs(hdr[5]), hs = D / H, kvd = KV * hs;
  auto rd = [&](size_t n) {
    std::vector<float> v(n);
    if (std::fread(v.data(), sizeof(float), n, f) != n) throw std::runtime_error("naive: short");
    return v;
  };
  auto emb = rd(size_t(V) * D), rms_att = rd(size_t(L) * D), wq = rd(size_t(L) * D * D),
       wk = rd(size_t(L) * kvd * D), wv = rd(size_t(L) * kvd * D), wo = rd(size_t(L) * D * D),
       rms_ffn = rd(size_t(L) * D), w1 = rd(size_t(L) * F * D), w2 = rd(size_t(L) * D * F),
       w3 = rd(size_t(L) * F * D), rms_final = rd(D);
  rd(size_t(T) * hs);  // legacy RoPE tables
  auto wcls = shared ? emb : rd(size_t(V) * D);
  std::fclose(f);

  auto mv = [](const float* W, const Vec& x, int out) {
    Vec y(out, 0.0);
    for (int o = 0; o < out; ++o)
      for (size_t i = 0; i < x.size(); ++i) y[o] += double(W[size_t(o) * x.size() + i]) * x[i];
    return y;
  };
  auto rms = [](const Vec& x, const float* g) {
    double ss = 0;
    for (double e : x) ss += e * e;
    double s = 1.0 / std::sqrt(ss / x.size() + 1e-5);
    Vec y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = g[i] * (s * x[i]);
    return y;
  };
  std::vector<Matrix> kcache(L), vcache(L);
  Matrix out;
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    Vec x(emb.begin() + size_t(tokens[pos]) * D, emb.begin() + size_t(tokens[pos] + 1) * D);
    for (int l = 0; l < L; ++l) {
      Vec xb = rms(x, &rms_att[size_t(l) * D]);
      Vec q = mv(&wq[size_t(l) * D * D], xb, D), k = mv(&wk[size_t(l) * kvd * D], xb, kvd),
          v = mv(&wv[size_t(l) * kvd * D], xb, kvd);
      for (int i = 0; i < D; i += 2) {  // adjacent pairs, as run.c
        int head_dim = i % hs;
        double freq = 1.0 / std::pow(10000.0, head_dim / double(hs));
        double a = pos * freq, co = std::cos(a), si = std::sin(a);
        for (int which = 0; which < (i < kvd ? 2 : 1); ++which) {
          Vec& vec = which == 0 ? q : k;
          double v0 = vec[i], v1 = vec[i + 1];
          vec[i] = v0 * co - v1 * si;
          vec[i + 1] = v0 * si + v1 * co;
        }
      }
      kcache[l].push_back(k);
      vcache[l].push_back(v);
      Vec att(D, 0.0);
      for (int h = 0; h < H; ++h) {
        int kvh = h / (H / KV);
        Vec sc(pos + 1);
        double mx = -1e300;
        for (size_t t = 0; t <= pos; ++t) {
          double s = 0;
          for (int i = 0; i < hs; ++i) s += q[h * hs + i] * kcache[l][t][kvh * hs + i];
          sc[t] = s / std::sqrt(double(hs));
          mx = std::max(mx, sc[t]);
        }
        double z = 0;
        for (double& e : sc) z += (e = std::exp(e - mx));
        for (size_t t = 0; t <= pos; ++t)
          for (int i = 0; i < hs; ++i) att[h * hs + i] += sc[t] / z * vcache[l][t][kvh * hs + i];
      }
      Vec o = mv(&wo[size_t(l) * D * D], att, D);
      for (int i = 0; i < D; ++i) x[i] += o[i];
      xb = rms(x, &rms_ffn[size_t(l) * D]);
      Vec h1 = mv(&w1[size_t(l) * F * D], xb, F), h3 = mv(&w3[size_t(l) * F * D], xb, F);
      for (int i = 0; i < F; ++i) h1[i] = h1[i] / (1.0 + std::exp(-h1[i])) * h3[i];
      Vec d = mv(&w2[size_t(l) * D * F], h1, D);
      for (int i = 0; i < D; ++i) x[i] += d[i];
    }
    out.push_back(mv(wcls.data(), rms(x, rms_final.data()), V));
  }
  return out;
}

}  // namespace naive
