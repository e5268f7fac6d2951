// The per-step recurrent loop of the LSTM and GRU cells with per-sample masks, compiled: the
// speed path of frameworks/torch_backend/fused_loop.py (framework.torch_loop=cpp).
//
// Why C++: at the classifier shape (B 64, T 50, H 128) the Python/autograd overhead of a
// per-step loop (~10 autograd nodes and ~25 kernel launches per step) costs about as much as
// the matmuls. Here one call runs the whole forward (one GEMM per step through ATen, then one
// fused pass over the gates) and one call the whole backward (the same, reversed); the weight
// gradient is one large GEMM after the loop, as in gal_bptt.py.
//
// What it computes is exactly cells.run (the reference autograd loop): the recurrent side of
// the pre-activations from h_{t-1} times a recurrent mask (tied (B, H) or per gate (G, B, H)),
// the cell's equations, the candidate mask of Semeniuta et al. on the candidate update (LSTM g,
// GRU n) and Zoneout's mix of the new and previous state. The input side (x, the Gal input
// masks, the input bias) arrives precomputed as `pre` (T, G, B, H); autograd differentiates it.
//
// Layouts: every (.., H) row is contiguous; masks arrive as logical (T, B, H) or (G, B, H)
// views whose broadcast axes have stride 0 (Bm = 1, Tm = 1, a scalar zoneout expectation).
// Gate order: LSTM i, f, g, o; GRU r, z, n (PyTorch's). The GEMM layout is (B, G*H) for a tied
// (or absent) recurrent mask and (G, B, H) for per-gate masks; the pre-activation gradient is
// returned in that layout, which is the layout fused_loop.py computes `pre` in (no copy).
//
// Speed: each step's elementwise work is one pass over a row, 8 floats at a time with AVX2
// (RDS_AVX2), an inlined Cephes exp and a Newton reciprocal; calling a library exp per vector
// cost as much as the step's GEMM. Accuracy: sigmoid and tanh within a few ulp of float (the
// tests ask 1e-5 relative of the whole computation); float64 uses libm.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#ifdef RDS_AVX2
#include <immintrin.h>
#endif

namespace {

using at::Tensor;
using Opt = std::optional<Tensor>;

// ---- lanes: one element (any float type) or, with AVX2, 8 floats -----------------------------
template <typename T>
struct Lane {
  using S = T;
  static constexpr int64_t W = 1;
  T v;
  static Lane load(const T* p) { return {*p}; }
  static Lane all(T x) { return {x}; }
  void store(T* p) const { *p = v; }
};
template <typename T>
inline Lane<T> operator+(Lane<T> a, Lane<T> b) { return {a.v + b.v}; }
template <typename T>
inline Lane<T> operator-(Lane<T> a, Lane<T> b) { return {a.v - b.v}; }
template <typename T>
inline Lane<T> operator*(Lane<T> a, Lane<T> b) { return {a.v * b.v}; }
template <typename T>
inline Lane<T> sigmoid(Lane<T> a) { return {T(1) / (T(1) + std::exp(-a.v))}; }
template <typename T>
inline Lane<T> tanh_of(Lane<T> a) { return {std::tanh(a.v)}; }

#ifdef RDS_AVX2
struct F8 {
  using S = float;
  static constexpr int64_t W = 8;
  __m256 v;
  static F8 load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static F8 all(float x) { return {_mm256_set1_ps(x)}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
};
inline F8 operator+(F8 a, F8 b) { return {_mm256_add_ps(a.v, b.v)}; }
inline F8 operator-(F8 a, F8 b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline F8 operator*(F8 a, F8 b) { return {_mm256_mul_ps(a.v, b.v)}; }

// Cephes expf: e^x = 2^n e^r, n = round(x / ln 2), |r| <= ln2 / 2, a degree-5 polynomial for e^r.
// Below -88.38 the result is 0 (no denormals); above 88 it is e^88 (finite, so that 1 / (1 + e)
// through recip8 is 0, never inf * 0).
inline __m256 exp8(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.f), lo = _mm256_set1_ps(-88.3762626647949f);
  x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
  __m256 n = _mm256_floor_ps(
      _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
  p = _mm256_add_ps(p, _mm256_set1_ps(1.f));
  __m256i e = _mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}
// 1 / d for finite d >= 1: the 12-bit estimate and one Newton step (~2^-22 relative), a third of
// the cost of a division, which was the largest single cost of the forward pass
inline __m256 recip8(__m256 d) {
  const __m256 r = _mm256_rcp_ps(d);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.f)));
}
inline F8 sigmoid(F8 a) {
  const __m256 one = _mm256_set1_ps(1.f);
  return {recip8(_mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), a.v))))};
}
// Cephes tanhf: an odd polynomial below |x| = 0.625 (no cancellation near 0), else
// 1 - 2 / (e^{2|x|} + 1) with the sign of x.
inline F8 tanh_of(F8 a) {
  const __m256 sign = _mm256_set1_ps(-0.f), one = _mm256_set1_ps(1.f);
  const __m256 ax = _mm256_andnot_ps(sign, a.v);
  const __m256 e = recip8(_mm256_add_ps(exp8(_mm256_add_ps(ax, ax)), one));
  const __m256 big = _mm256_fnmadd_ps(_mm256_set1_ps(2.f), e, one);
  const __m256 z = _mm256_mul_ps(a.v, a.v);
  __m256 p = _mm256_set1_ps(-5.70498872745E-3f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954E-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531E-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036E-1f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422E-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), a.v, a.v);
  const __m256 large = _mm256_or_ps(big, _mm256_and_ps(sign, a.v));
  return {_mm256_blendv_ps(large, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ))};
}
#endif

// Run a row kernel over H elements: 8-wide lanes first (float with AVX2), then single ones.
template <typename T, typename K>
inline void sweep(const K& k, int64_t n) {
  int64_t j = 0;
#ifdef RDS_AVX2
  if constexpr (std::is_same_v<T, float>) {
    for (; j + F8::W <= n; j += F8::W) k.template at<F8>(j);
  }
#endif
  for (; j < n; ++j) k.template at<Lane<T>>(j);
}

template <typename V>
inline V one() { return V::all(typename V::S(1)); }
template <typename V>
inline V zero() { return V::all(typename V::S(0)); }

// ---- strided row access ----------------------------------------------------------------------
// A (N0, N1, H) view with contiguous rows: row(i, j) = p + i * s0 + j * s1; empty when absent.
template <typename T>
struct Rows {
  const T* p = nullptr;
  int64_t s0 = 0, s1 = 0;
  Rows() = default;
  explicit Rows(const Tensor& x) : p(x.data_ptr<T>()), s0(x.stride(0)), s1(x.stride(1)) {}
  const T* operator()(int64_t i, int64_t j) const { return p ? p + i * s0 + j * s1 : nullptr; }
  explicit operator bool() const { return p != nullptr; }
};
template <typename T>
Rows<T> rows_of(const Opt& x) { return x && x->defined() ? Rows<T>(*x) : Rows<T>(); }

constexpr int kMaxGates = 4;

// h times the recurrent mask(s) into the GEMM operand rows of the next step (n = 1 tied, G per
// gate; a null mask copies h)
template <typename T>
struct MaskedH {
  int n = 0;
  T* dst[kMaxGates] = {};
  const T* m[kMaxGates] = {};
  template <class V>
  void put(int64_t j, V h) const {
    for (int g = 0; g < n; ++g) (m[g] ? h * V::load(m[g] + j) : h).store(dst[g] + j);
  }
};

// ---- forward row kernels ---------------------------------------------------------------------
template <typename T>
struct LstmFwd {
  const T *p[4], *r[4], *cp, *hp, *cm, *uh, *uc;
  T *a[4], *cn, *x, *h;
  MaskedH<T> hm;
  template <class V>
  void at(int64_t j) const {
    const V i = sigmoid(V::load(p[0] + j) + V::load(r[0] + j));
    const V f = sigmoid(V::load(p[1] + j) + V::load(r[1] + j));
    const V g = tanh_of(V::load(p[2] + j) + V::load(r[2] + j));
    const V o = sigmoid(V::load(p[3] + j) + V::load(r[3] + j));
    i.store(a[0] + j);
    f.store(a[1] + j);
    g.store(a[2] + j);
    o.store(a[3] + j);
    const V c_prev = V::load(cp + j);
    V c = f * c_prev + i * (cm ? g * V::load(cm + j) : g);
    const V tc = tanh_of(c);
    tc.store(x + j);
    V hn = o * tc;
    if (uh) {
      const V u = V::load(uh + j);
      hn = u * hn + (one<V>() - u) * V::load(hp + j);
    }
    if (uc) {
      const V u = V::load(uc + j);
      c = u * c + (one<V>() - u) * c_prev;
    }
    c.store(cn + j);
    hn.store(h + j);
    hm.put(j, hn);
  }
};

template <typename T>
struct GruFwd {
  const T *p[3], *r[3], *hp, *cm, *uh;
  T *a[3], *x, *h;
  MaskedH<T> hm;
  template <class V>
  void at(int64_t j) const {
    const V rg = sigmoid(V::load(p[0] + j) + V::load(r[0] + j));
    const V z = sigmoid(V::load(p[1] + j) + V::load(r[1] + j));
    const V rn = V::load(r[2] + j);  // the recurrent side of n, bias included
    const V n = tanh_of(V::load(p[2] + j) + rg * rn);
    rg.store(a[0] + j);
    z.store(a[1] + j);
    n.store(a[2] + j);
    rn.store(x + j);
    const V h_prev = V::load(hp + j);
    V hn = (one<V>() - z) * (cm ? n * V::load(cm + j) : n) + z * h_prev;
    if (uh) {
      const V u = V::load(uh + j);
      hn = u * hn + (one<V>() - u) * h_prev;
    }
    hn.store(h + j);
    hm.put(j, hn);
  }
};

// ---- backward row kernels --------------------------------------------------------------------
// dL/d(carried h_t): the pass-through part, d_out, and the GEMM term of step t + 1 (n = 0 at the
// last step; 1 tied; G per gate), each GEMM row times its recurrent mask
template <typename T>
struct DhIn {
  const T *pass, *dout;
  int n = 0;
  const T* tmp[kMaxGates] = {};
  const T* m[kMaxGates] = {};
  template <class V>
  V at(int64_t j) const {
    V dh = dout ? V::load(pass + j) + V::load(dout + j) : V::load(pass + j);
    for (int g = 0; g < n; ++g) dh = dh + (m[g] ? V::load(tmp[g] + j) * V::load(m[g] + j)
                                                 : V::load(tmp[g] + j));
    return dh;
  }
};

template <typename T>
struct LstmBwd {
  DhIn<T> in;
  const T *a[4], *x, *cp, *cm, *uh, *uc;
  T *dz[4], *dc, *pass;
  template <class V>
  void at(int64_t j) const {
    const V dh = in.template at<V>(j);
    V dhn = dh, keep_h = zero<V>(), dcn = V::load(dc + j), keep_c = zero<V>();
    if (uh) {
      const V u = V::load(uh + j);
      dhn = dh * u;
      keep_h = dh * (one<V>() - u);
    }
    if (uc) {
      const V u = V::load(uc + j);
      keep_c = dcn * (one<V>() - u);
      dcn = dcn * u;
    }
    const V i = V::load(a[0] + j), f = V::load(a[1] + j), g = V::load(a[2] + j),
            o = V::load(a[3] + j), tc = V::load(x + j);
    const V m = cm ? V::load(cm + j) : one<V>();
    dcn = dcn + dhn * o * (one<V>() - tc * tc);
    (dcn * (g * m) * (i * (one<V>() - i))).store(dz[0] + j);
    (dcn * V::load(cp + j) * (f * (one<V>() - f))).store(dz[1] + j);
    (dcn * i * m * (one<V>() - g * g)).store(dz[2] + j);
    (dhn * tc * (o * (one<V>() - o))).store(dz[3] + j);
    (dcn * f + keep_c).store(dc + j);
    keep_h.store(pass + j);
  }
};

template <typename T>
struct GruBwd {
  DhIn<T> in;
  const T *a[3], *x, *hp, *cm, *uh;
  T *dzh[3], *dzx[3], *pass;
  template <class V>
  void at(int64_t j) const {
    const V dh = in.template at<V>(j);
    V dhn = dh, keep_h = zero<V>();
    if (uh) {
      const V u = V::load(uh + j);
      dhn = dh * u;
      keep_h = dh * (one<V>() - u);
    }
    const V r = V::load(a[0] + j), z = V::load(a[1] + j), n = V::load(a[2] + j);
    const V m = cm ? V::load(cm + j) : one<V>();
    const V dn = dhn * (one<V>() - z) * m * (one<V>() - n * n);  // d(pre-activation of n)
    const V gz = dhn * (V::load(hp + j) - n * m) * (z * (one<V>() - z));
    const V gr = dn * V::load(x + j) * (r * (one<V>() - r));
    gr.store(dzh[0] + j);
    gr.store(dzx[0] + j);
    gz.store(dzh[1] + j);
    gz.store(dzx[1] + j);
    dn.store(dzx[2] + j);
    (dn * r).store(dzh[2] + j);
    (keep_h + dhn * z).store(pass + j);
  }
};

template <typename T>
struct DhOut {  // dL/dh0 after the loop
  DhIn<T> in;
  T* out;
  template <class V>
  void at(int64_t j) const { in.template at<V>(j).store(out + j); }
};

inline int64_t grain_rows(int64_t width) {
  // rows per task: starting threads costs more than a small elementwise pass
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width));
}

// ---- forward -----------------------------------------------------------------------------------
template <typename T>
std::vector<Tensor> forward_impl(const Tensor& pre, const Tensor& h0, const Tensor& c0,
                                 const Tensor& w_hh, const Opt& bias_hh, const Opt& m_rec,
                                 bool per_gate, const Opt& cand, const Opt& uh, const Opt& uc,
                                 bool gru, bool save) {
  const int64_t n_t = pre.size(0), G = pre.size(1), B = pre.size(2), H = pre.size(3);
  const auto opts = h0.options();
  Tensor out = at::empty({B, n_t, H}, opts);
  // saved for the backward: activations (T, G, B, H) and, per step, LSTM tanh(c_new) or GRU's
  // recurrent n pre-activation (it sits inside the reset product)
  Tensor acts = at::empty({save ? n_t : 1, G, B, H}, opts);
  Tensor aux = at::empty({save ? n_t : 1, B, H}, opts);
  Tensor cs = gru ? at::empty({0}, opts) : at::empty({n_t + 1, B, H}, opts);
  // masked h_{t-1} per step, the left operand of the recurrent GEMM (kept for dW)
  Tensor hm = per_gate ? at::empty({G, n_t, B, H}, opts) : at::empty({n_t, B, H}, opts);
  Tensor rec = per_gate ? at::empty({G, B, H}, opts) : at::empty({B, G * H}, opts);
  const Tensor wt = w_hh.t();
  const Tensor u4t = w_hh.view({G, H, H}).transpose(1, 2);
  const bool has_bias = bias_hh && bias_hh->defined();
  const Tensor bias3 = has_bias && per_gate ? bias_hh->view({G, 1, H}) : Tensor();
  if (!gru) cs[0].copy_(c0);

  const T* pre_p = pre.data_ptr<T>();
  const int64_t p_st = pre.stride(0), p_sg = pre.stride(1), p_sb = pre.stride(2);
  const Rows<T> rec_rows(per_gate ? rec : rec.view({B, G, H}).permute({1, 0, 2}));
  const Rows<T> mask = rows_of<T>(m_rec), cm = rows_of<T>(cand), zh = rows_of<T>(uh),
                zc = rows_of<T>(uc);
  T* out_p = out.data_ptr<T>();
  T* acts_p = acts.data_ptr<T>();
  T* aux_p = aux.data_ptr<T>();
  T* cs_p = gru ? nullptr : cs.data_ptr<T>();
  T* hm_p = hm.data_ptr<T>();
  const T* h0_p = h0.data_ptr<T>();
  const int64_t BH = B * H;

  auto masked_h = [&](int64_t s, int64_t b) {  // where step s's GEMM operand row b goes
    MaskedH<T> w;
    if (s >= n_t) return w;
    w.n = per_gate ? static_cast<int>(G) : 1;
    for (int g = 0; g < w.n; ++g) {
      w.dst[g] = per_gate ? hm_p + (g * n_t + s) * BH + b * H : hm_p + s * BH + b * H;
      w.m[g] = mask(g, b);
    }
    return w;
  };
  for (int64_t b = 0; b < B; ++b) {
    const MaskedH<T> w = masked_h(0, b);
    const T* h = h0_p + b * H;
    for (int g = 0; g < w.n; ++g)
      for (int64_t j = 0; j < H; ++j) w.dst[g][j] = w.m[g] ? h[j] * w.m[g][j] : h[j];
  }

  for (int64_t t = 0; t < n_t; ++t) {
    const int64_t ts = save ? t : 0;
    if (per_gate) {
      const Tensor hm_t = hm.select(1, t);
      if (has_bias) at::baddbmm_out(rec, bias3, hm_t, u4t);
      else at::bmm_out(rec, hm_t, u4t);
    } else {
      const Tensor hm_t = hm[t];
      if (has_bias) at::addmm_out(rec, *bias_hh, hm_t, wt);
      else at::mm_out(rec, hm_t, wt);
    }
    at::parallel_for(0, B, grain_rows(G * H), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T* hp = t == 0 ? h0_p + b * H : out_p + (b * n_t + t - 1) * H;
        T* h = out_p + (b * n_t + t) * H;
        T* x = aux_p + (ts * B + b) * H;
        if (!gru) {
          LstmFwd<T> k;
          for (int g = 0; g < 4; ++g) {
            k.p[g] = pre_p + t * p_st + g * p_sg + b * p_sb;
            k.r[g] = rec_rows(g, b);
            k.a[g] = acts_p + ((ts * G + g) * B + b) * H;
          }
          k.cp = cs_p + (t * B + b) * H;
          k.cn = cs_p + ((t + 1) * B + b) * H;
          k.hp = hp, k.h = h, k.x = x;
          k.cm = cm(t, b), k.uh = zh(t, b), k.uc = zc(t, b);
          k.hm = masked_h(t + 1, b);
          sweep<T>(k, H);
        } else {
          GruFwd<T> k;
          for (int g = 0; g < 3; ++g) {
            k.p[g] = pre_p + t * p_st + g * p_sg + b * p_sb;
            k.r[g] = rec_rows(g, b);
            k.a[g] = acts_p + ((ts * G + g) * B + b) * H;
          }
          k.hp = hp, k.h = h, k.x = x;
          k.cm = cm(t, b), k.uh = zh(t, b);
          k.hm = masked_h(t + 1, b);
          sweep<T>(k, H);
        }
      }
    });
  }
  Tensor h_last = out.select(1, n_t - 1).clone();
  Tensor c_last = gru ? c0.clone() : cs[n_t].clone();
  return {out, h_last, c_last, acts, aux, cs, hm};
}

// ---- backward ----------------------------------------------------------------------------------
template <typename T>
std::vector<Tensor> backward_impl(const Tensor& d_out, const Tensor& d_h, const Tensor& d_c,
                                  const Tensor& h0, const Tensor& out, const Tensor& acts,
                                  const Tensor& aux, const Tensor& cs, const Tensor& hm,
                                  const Tensor& w_hh, const Opt& m_rec, bool per_gate,
                                  const Opt& cand, const Opt& uh, const Opt& uc, bool gru,
                                  bool need_h0, bool need_bias_hh) {
  const int64_t n_t = acts.size(0), G = acts.size(1), B = acts.size(2), H = acts.size(3);
  const auto opts = acts.options();
  const int64_t BH = B * H, GH = G * H;
  // pre-activation gradients in the GEMM layout; the recurrent and the input side differ only
  // in a GRU's n gate (the reset product)
  Tensor dzh = per_gate ? at::empty({G, n_t, B, H}, opts) : at::empty({n_t, B, GH}, opts);
  Tensor dzx = gru ? at::empty_like(dzh) : dzh;
  Tensor tmp = per_gate ? at::empty({G, B, H}, opts) : at::empty({B, H}, opts);
  Tensor pass = d_h.contiguous().clone();  // dL/dh_t without d_out and the GEMM term
  Tensor dc = d_c.contiguous().clone();    // dL/dc_t (a GRU carries c untouched)
  const Tensor u4 = w_hh.view({G, H, H});

  const Rows<T> d_o(d_out), mask = rows_of<T>(m_rec), cm = rows_of<T>(cand),
                zh = rows_of<T>(uh), zc = rows_of<T>(uc);
  const T *acts_p = acts.data_ptr<T>(), *aux_p = aux.data_ptr<T>(), *out_p = out.data_ptr<T>(),
          *h0_p = h0.data_ptr<T>(), *tmp_p = tmp.data_ptr<T>();
  const T* cs_p = gru ? nullptr : cs.data_ptr<T>();
  T *dzh_p = dzh.data_ptr<T>(), *dzx_p = dzx.data_ptr<T>(), *pass_p = pass.data_ptr<T>(),
    *dc_p = dc.data_ptr<T>();
  bool have_tmp = false;

  auto dh_in = [&](int64_t b, const T* dout) {
    DhIn<T> in;
    in.pass = pass_p + b * H;
    in.dout = dout;
    if (have_tmp) {
      in.n = per_gate ? static_cast<int>(G) : 1;
      for (int g = 0; g < in.n; ++g) {
        in.tmp[g] = tmp_p + (per_gate ? g * BH : 0) + b * H;
        in.m[g] = mask(g, b);
      }
    }
    return in;
  };
  auto dz_row = [&](T* base, int64_t t, int64_t g, int64_t b) {
    return per_gate ? base + (g * n_t + t) * BH + b * H : base + (t * B + b) * GH + g * H;
  };

  for (int64_t t = n_t - 1; t >= 0; --t) {
    at::parallel_for(0, B, grain_rows(GH), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T* x = aux_p + (t * B + b) * H;
        if (!gru) {
          LstmBwd<T> k;
          k.in = dh_in(b, d_o(t, b));
          for (int g = 0; g < 4; ++g) {
            k.a[g] = acts_p + ((t * G + g) * B + b) * H;
            k.dz[g] = dz_row(dzh_p, t, g, b);
          }
          k.x = x, k.cp = cs_p + (t * B + b) * H;
          k.cm = cm(t, b), k.uh = zh(t, b), k.uc = zc(t, b);
          k.dc = dc_p + b * H, k.pass = pass_p + b * H;
          sweep<T>(k, H);
        } else {
          GruBwd<T> k;
          k.in = dh_in(b, d_o(t, b));
          for (int g = 0; g < 3; ++g) {
            k.a[g] = acts_p + ((t * G + g) * B + b) * H;
            k.dzh[g] = dz_row(dzh_p, t, g, b);
            k.dzx[g] = dz_row(dzx_p, t, g, b);
          }
          k.x = x, k.hp = t == 0 ? h0_p + b * H : out_p + (b * n_t + t - 1) * H;
          k.cm = cm(t, b), k.uh = zh(t, b);
          k.pass = pass_p + b * H;
          sweep<T>(k, H);
        }
      }
    });
    if (t > 0 || need_h0) {
      if (per_gate) at::bmm_out(tmp, dzh.select(1, t), u4);
      else at::mm_out(tmp, dzh[t], w_hh);
      have_tmp = true;
    }
  }
  Tensor dh0 = at::empty({0}, opts);
  if (need_h0) {
    dh0 = at::empty({B, H}, opts);
    T* d = dh0.data_ptr<T>();
    for (int64_t b = 0; b < B; ++b) {
      DhOut<T> k{dh_in(b, nullptr), d + b * H};
      sweep<T>(k, H);
    }
  }
  Tensor dw, db = at::empty({0}, opts);
  if (per_gate) {
    dw = at::bmm(dzh.view({G, n_t * B, H}).transpose(1, 2), hm.view({G, n_t * B, H}))
             .view({GH, H});
    if (need_bias_hh) db = dzh.sum({1, 2}).view({GH});
  } else {
    dw = at::mm(dzh.view({n_t * B, GH}).t(), hm.view({n_t * B, H}));
    if (need_bias_hh) db = dzh.view({n_t * B, GH}).sum(0);
  }
  Tensor d_pre = per_gate ? dzx.permute({1, 0, 2, 3})
                          : dzx.view({n_t, B, G, H}).permute({0, 2, 1, 3});
  return {d_pre, dh0, dc, dw, db};
}

void check_rows(const Opt& x, const char* name) {
  TORCH_CHECK(!x || !x->defined() || (x->dim() == 3 && x->stride(2) == 1), name,
              " must be a 3-d view with contiguous rows");
}

std::vector<Tensor> forward(const Tensor& pre, const Tensor& h0, const Tensor& c0,
                            const Tensor& w_hh, const Opt& bias_hh, const Opt& m_rec,
                            bool per_gate, const Opt& cand, const Opt& uh, const Opt& uc,
                            bool gru, bool save) {
  TORCH_CHECK(pre.dim() == 4 && pre.stride(3) == 1, "pre must be (T, G, B, H), rows contiguous");
  TORCH_CHECK(pre.size(0) > 0 && pre.size(1) == (gru ? 3 : 4), "pre: empty or wrong gate count");
  TORCH_CHECK(!per_gate || (m_rec && m_rec->defined()), "per_gate needs a recurrent mask");
  check_rows(m_rec, "m_rec");
  check_rows(cand, "cand");
  check_rows(uh, "uh");
  check_rows(uc, "uc");
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "rds_fused_loop_forward", [&] {
    result = forward_impl<scalar_t>(pre, h0.contiguous(), c0.contiguous(), w_hh.contiguous(),
                                    bias_hh, m_rec, per_gate, cand, uh, uc, gru, save);
  });
  return result;
}

std::vector<Tensor> backward(const Tensor& d_out, const Tensor& d_h, const Tensor& d_c,
                             const Tensor& h0, const Tensor& out, const Tensor& acts,
                             const Tensor& aux, const Tensor& cs, const Tensor& hm,
                             const Tensor& w_hh, const Opt& m_rec, bool per_gate,
                             const Opt& cand, const Opt& uh, const Opt& uc, bool gru,
                             bool need_h0, bool need_bias_hh) {
  TORCH_CHECK(d_out.dim() == 3 && d_out.stride(2) == 1, "d_out must be (T, B, H), rows contiguous");
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "rds_fused_loop_backward", [&] {
    result = backward_impl<scalar_t>(d_out, d_h, d_c, h0.contiguous(), out, acts, aux, cs, hm,
                                     w_hh.contiguous(), m_rec, per_gate, cand, uh, uc, gru,
                                     need_h0, need_bias_hh);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY(rds_fused_loop, m) {
  m.def("forward(Tensor pre, Tensor h0, Tensor c0, Tensor w_hh, Tensor? bias_hh, Tensor? m_rec, "
        "bool per_gate, Tensor? cand, Tensor? uh, Tensor? uc, bool gru, bool save) -> Tensor[]");
  m.def("backward(Tensor d_out, Tensor d_h, Tensor d_c, Tensor h0, Tensor out, Tensor acts, "
        "Tensor aux, Tensor cs, Tensor hm, Tensor w_hh, Tensor? m_rec, bool per_gate, "
        "Tensor? cand, Tensor? uh, Tensor? uc, bool gru, bool need_h0, bool need_bias_hh) "
        "-> Tensor[]");
}

TORCH_LIBRARY_IMPL(rds_fused_loop, CPU, m) {
  m.impl("forward", &forward);
  m.impl("backward", &backward);
}
