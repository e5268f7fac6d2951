// The recurrent layer's time loop with per-sample masks, framework-neutral: the row kernels
// (one fused pass over a step's gates), the tiled GEMM driver and the forward and backward
// loops over raw buffers. Two bindings run it: frameworks/torch_backend/csrc/fused_loop.cpp
// (PyTorch, GEMM tiles on oneDNN's brgemm) and frameworks/keras_backend/csrc/gal_loop.cc
// (TensorFlow, GEMM tiles on Eigen); each allocates the buffers, supplies an `Env` (a tile GEMM
// and a parallel-for over its own thread pool) and hands the results back to its autograd.
//
// What it computes is exactly the reference loop of the cell seam (frameworks/torch_backend/
// cells.py, frameworks/keras_backend/cells.py): x times the Gal input mask (tied, or one per
// gate) through the input weights for all steps at once; per step, h_{t-1} times the recurrent
// mask (tied (B, H), or one per gate (G, B, H)) through the recurrent weights; the cell's
// equations; the candidate mask of Semeniuta et al. on the candidate update (LSTM g, GRU n) and
// Zoneout's mix of the new and previous state. Gate order LSTM i, f, g, o; GRU r, z, n.
//
// Layouts: row-major throughout; every (t, b) matrix is batch-major (row b * T + t), as x (B,
// T, D) and out (B, T, H) are, so the input side needs no transposed copy of x and a step's GEMM
// reads its B rows with a stride of T rows. Weights arrive as the GEMMs read them: the input
// weights as (D, GH) and (GH, D), the recurrent as (H, GH) and (GH, H) (Keras' kernel layout and
// PyTorch's; each binding transposes the one it lacks). Masks are logical (T, B, X) or (G, B, X)
// views with contiguous rows whose broadcast axes have stride 0 (Bm = 1, Tm = 1, a scalar
// zoneout expectation).
//
// Speed: each step's elementwise work is one pass over a row, 8 floats at a time with AVX2
// (RDS_AVX2), an inlined Cephes exp and a Newton reciprocal (a library exp per vector cost as
// much as the step's GEMM); the GEMMs are tiles spread over the threads, per-gate products one
// batch of tiles. Accuracy: sigmoid and tanh within a few ulp of float (the tests ask 1e-5
// relative of the whole computation); float64 uses libm.

#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#ifdef RDS_AVX2
#include <immintrin.h>
#endif

namespace rds {

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
  const T* operator()(int64_t i, int64_t j) const { return p ? p + i * s0 + j * s1 : nullptr; }
  explicit operator bool() const { return p != nullptr; }
};

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
  const T *p[4], *bi[4], *r[4], *cp, *hp, *cm, *uh, *uc;
  T *a[4], *cn, *x, *h;
  MaskedH<T> hm;
  template <class V>
  void at(int64_t j) const {
    const V i = sigmoid(V::load(p[0] + j) + V::load(bi[0] + j) + V::load(r[0] + j));
    const V f = sigmoid(V::load(p[1] + j) + V::load(bi[1] + j) + V::load(r[1] + j));
    const V g = tanh_of(V::load(p[2] + j) + V::load(bi[2] + j) + V::load(r[2] + j));
    const V o = sigmoid(V::load(p[3] + j) + V::load(bi[3] + j) + V::load(r[3] + j));
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
  const T *p[3], *bi[3], *r[3], *hp, *cm, *uh;
  T *a[3], *x, *h;
  MaskedH<T> hm;
  template <class V>
  void at(int64_t j) const {
    const V rg = sigmoid(V::load(p[0] + j) + V::load(bi[0] + j) + V::load(r[0] + j));
    const V z = sigmoid(V::load(p[1] + j) + V::load(bi[1] + j) + V::load(r[1] + j));
    const V rn = V::load(r[2] + j);  // the recurrent side of n, bias included
    const V n = tanh_of(V::load(p[2] + j) + V::load(bi[2] + j) + rg * rn);
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


// rows of the batch per thread: one contiguous block each
inline int64_t rows_per_thread(int64_t rows, int64_t threads) {
  return std::max<int64_t>(1, (rows + threads - 1) / std::max<int64_t>(1, threads));
}

// ---- GEMM --------------------------------------------------------------------------------------
template <typename T>
struct Mat {  // a row-major matrix in memory: element (i, j) at p[i * ld + j]; the next of a
  T* p;       // batch of them at p + step
  int64_t ld, step = 0;
};

// C_i = A_i B_i (+ C_i when `add`) for i < batch; A_i (M x K), B_i (K x N), C_i (M x N). Tiles of
// at most Env::kTileM x Env::kTileN spread over env's threads (env.tile: one tile, single-
// threaded), column blocks outermost so a thread keeps its block of B (the weights) in cache
// across the row blocks; smaller tiles until every thread has one (a step's product can be a
// single tile), columns first, so each thread reads only its part of B. The tile size is the
// binding's: a micro-kernel that reads its operands in place (brgemm) runs small cache-sized
// tiles best, a library GEMM that packs both operands per call (Eigen) the largest ones.
template <typename T, class Env>
void gemm(Env& env, int64_t M, int64_t N, int64_t K, Mat<const T> A, Mat<const T> B, Mat<T> C,
          bool add, int64_t batch = 1) {
  if (M == 0 || N == 0 || batch == 0) return;
  int64_t tm = std::min(Env::kTileM, M), tn = std::min(Env::kTileN, N);
  const auto tiles = [&] { return batch * ((M + tm - 1) / tm) * ((N + tn - 1) / tn); };
  while (tiles() < env.threads() && (tn > 32 || tm > 16)) {
    if (tn > 32 && N > tn / 2) tn /= 2;
    else if (tm > 16 && M > tm / 2) tm /= 2;
    else break;
  }
  const int64_t nm = (M + tm - 1) / tm, per = tiles() / batch;
  env.parallel_for(0, tiles(), 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t z = i / per, n0 = (i % per / nm) * tn, m0 = (i % nm) * tm;
      env.tile(std::min(tm, M - m0), std::min(tn, N - n0), K, A.p + z * A.step + m0 * A.ld, A.ld,
               B.p + z * B.step + n0, B.ld, C.p + z * C.step + m0 * C.ld + n0, C.ld, add);
    }
  });
}

#ifdef RDS_AVX2
// d (8 x 8, row stride ld) = s (8 x 8, row stride ls)^T in registers
inline void transpose8(const float* s, int64_t ls, float* d, int64_t ld) {
  __m256 r[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * ls);
  for (int i = 0; i < 8; i += 2) {
    u[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    u[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(u[i], u[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(u[i], u[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(u[i + 1], u[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(u[i + 1], u[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(d + i * ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(d + (i + 4) * ld, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// dst (cols x rows) = src (rows x cols)^T, in 32 x 32 tiles spread over the threads, 8 x 8
// blocks in registers (AVX2) inside a tile; a strided copy, whose accesses alias in L1 at these
// power-of-two row lengths, was several times slower
template <typename T, class Env>
void transpose(Env& env, const T* s, int64_t rows, int64_t cols, T* d) {
  constexpr int64_t kTile = 32;
  const int64_t nr = (rows + kTile - 1) / kTile, nc = (cols + kTile - 1) / kTile;
  env.parallel_for(0, nr * nc, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r0 = (i / nc) * kTile, c0 = (i % nc) * kTile;
      const int64_t r1 = std::min(r0 + kTile, rows), c1 = std::min(c0 + kTile, cols);
      int64_t rv = r0, cv = c0;  // the part covered by whole 8 x 8 blocks: [r0, rv) x [c0, cv)
#ifdef RDS_AVX2
      if constexpr (std::is_same_v<T, float>) {
        rv = r0 + (r1 - r0) / 8 * 8, cv = c0 + (c1 - c0) / 8 * 8;
        for (int64_t r = r0; r < rv; r += 8)
          for (int64_t c = c0; c < cv; c += 8)
            transpose8(s + r * cols + c, cols, d + c * rows + r, rows);
      }
#endif
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = (c < cv ? rv : r0); r < r1; ++r) d[c * rows + r] = s[r * cols + c];
    }
  });
}

// ---- the layer ---------------------------------------------------------------------------------
struct Dims {
  int64_t B, T, D, H, G;
  int64_t Gi;     // input masks: 0 none, 1 tied, G per gate
  bool per_gate;  // recurrent masks one per gate (else tied or none)
  bool gru;
  int64_t BT() const { return B * T; }
  int64_t GH() const { return G * H; }
};

// ---- the weights in panels --------------------------------------------------------------------
// A step's product streams the whole recurrent weight matrix through a few rows of h. Read in
// place, each of its rows is a jump of a whole weight row (10 KB at H 650, a new page per row,
// which the hardware prefetcher does not follow); copied once per call into contiguous panels of
// Env::kPanelN columns, a tile reads one sequential block (measured with brgemm at PTB h650's
// per-thread step, 10 x 650 by 650 x 2600: 65 GFLOP/s in place, 130 in 32-column panels). The
// input side's tiles read the input weights the same way. A binding whose GEMM packs its
// operands per call anyway (Eigen) sets kPanelN 0: no panels.
template <class Env>
constexpr int64_t panels_of(int64_t N) { return (N + Env::kPanelN - 1) / Env::kPanelN; }

// Floats of the panels of `groups` K x N matrices (0: the binding uses no panels)
template <class Env>
int64_t panel_floats(int64_t K, int64_t N, int64_t groups) {
  if constexpr (Env::kPanelN == 0) return 0;
  else return groups * panels_of<Env>(N) * Env::kPanelN * K;
}

// What the binding allocates for the recurrent weights' panels, either pass: the forward's (H,
// GH) and the backward's (GH, H), or G blocks of (H, H) with per-gate masks
template <class Env>
int64_t recurrent_panel_floats(const Dims& d) {
  if (d.per_gate) return panel_floats<Env>(d.H, d.H, d.G);
  return std::max(panel_floats<Env>(d.H, d.GH(), 1), panel_floats<Env>(d.GH(), d.H, 1));
}

// ... and for the input weights (D, GH): Gi column blocks with per-gate input masks
template <class Env>
int64_t input_panel_floats(const Dims& d) {
  const int64_t groups = std::max<int64_t>(d.Gi, 1);
  return panel_floats<Env>(d.D, d.GH() / groups, groups);
}

// dst = `groups` K x N matrices (row stride ld, the next at src + g * step) as panels: panel p
// of group g holds columns [p P, p P + P) row after row, at dst + (g * panels_of(N) + p) * K P
template <typename T, class Env>
void pack_panels(Env& env, const T* src, int64_t K, int64_t N, int64_t ld, int64_t groups,
                 int64_t step, T* dst) {
  constexpr int64_t P = Env::kPanelN;
  const int64_t np = panels_of<Env>(N);
  env.parallel_for(0, groups * np, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t n0 = i % np * P, w = std::min(P, N - n0);
      const T* s = src + i / np * step + n0;
      T* out = dst + i * K * P;
      for (int64_t k = 0; k < K; ++k) std::copy(s + k * ld, s + k * ld + w, out + k * P);
    }
  });
}

// C (M x N) = A (M x K) B (+ C when `add`), single-threaded: B from its panels where the binding
// gave them (group g of pack_panels), else in place (row stride ldb)
template <typename T, class Env>
void step_product(Env& env, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
                  const T* B, int64_t ldb, const T* panels, int64_t g, T* C, int64_t ldc,
                  bool add) {
  if constexpr (Env::kPanelN > 0) {
    if (panels) {
      constexpr int64_t P = Env::kPanelN;
      const T* first = panels + g * panels_of<Env>(N) * K * P;
      for (int64_t n0 = 0; n0 < N; n0 += P)
        env.tile(M, std::min(P, N - n0), K, A, lda, first + n0 * K, P, C + n0, ldc, add);
      return;
    }
  }
  env.tile(M, N, K, A, lda, B, ldb, C, ldc, add);
}

template <typename T>
struct Masks {  // absent ones empty
  Rows<T> in;   // (Gi, B, D)
  Rows<T> rec;  // (1 or G, B, H)
  Rows<T> cand, uh, uc;  // (T, B, H): candidate mask, zoneout updates of h and c
};

template <typename T>
struct Forward {
  const T *x, *wi_t, *wh_t, *bias, *bias_hh, *h0, *c0;  // x (B, T, D); wi_t (D, GH); wh_t (H, GH);
                                                        // bias (GH); bias_hh (GH) or null
  T* xm;    // (Gi, BT, D): x times its mask(s), kept for dW_ih; unused without input masks
  T* pre;   // (BT, GH) scratch: x's side, without the bias
  T* rec;   // (B, GH) scratch: h's side of a step, bias_hh included
  T* out;   // (B, T, H)
  T* acts;  // (T or 1 when not saving, G, B, H): the gate activations
  T* aux;   // (T or 1, B, H): LSTM tanh(c_t), GRU the recurrent side of n
  T* cs;    // (T + 1, B, H): LSTM c_0 .. c_T (GRU: unused)
  T* hm;    // (G or 1, BT, H): masked h_{t-1}, each step's GEMM operand
  T *h_last, *c_last;  // (B, H)
  bool save;
  T* wh_panels = nullptr;  // recurrent_panel_floats(d) scratch for the weights' panels, or null
  T* wi_panels = nullptr;  // input_panel_floats(d) scratch, or null
};

template <typename T, class Env>
void forward(Env& env, const Dims& d, const Masks<T>& m, const Forward<T>& f) {
  const int64_t B = d.B, n_t = d.T, D = d.D, H = d.H, G = d.G, BT = d.BT(), GH = d.GH();
  // the input side for all steps: x times its mask(s) (Gi of them, each for GH / Gi columns of
  // the weights), by blocks of rows, each block's GEMM right after its rows are written, while
  // they are in cache; without masks or panels, one GEMM
  const int64_t groups = std::max<int64_t>(d.Gi, 1), cols = GH / groups;
  if (f.wi_panels) pack_panels<T>(env, f.wi_t, D, cols, GH, groups, cols, f.wi_panels);
  if (d.Gi == 0 && !f.wi_panels) {
    gemm<T>(env, BT, GH, D, {f.x, D}, {f.wi_t, GH}, {f.pre, GH}, false);
  } else {
    const int64_t rows = Env::kBlockRows, blocks = (BT + rows - 1) / rows;
    env.parallel_for(0, blocks * groups, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t g = i % groups, r0 = i / groups * rows, r1 = std::min(BT, r0 + rows);
        const T* a = f.x + r0 * D;
        if (d.Gi > 0) {
          T* xm = f.xm + (g * BT + r0) * D;
          for (int64_t r = r0; r < r1; ++r) {
            const T *xr = f.x + r * D, *mr = m.in(g, r / n_t);
            T* dst = xm + (r - r0) * D;
            for (int64_t j = 0; j < D; ++j) dst[j] = xr[j] * mr[j];
          }
          a = xm;
        }
        step_product<T>(env, r1 - r0, cols, D, a, D, f.wi_t + g * cols, GH, f.wi_panels, g,
                        f.pre + r0 * GH + g * cols, GH, false);
      }
    });
  }

  if (!d.gru) std::copy(f.c0, f.c0 + B * H, f.cs);
  auto masked_h = [&](int64_t s, int64_t b) {  // where step s's GEMM operand row b goes
    MaskedH<T> w;
    if (s >= n_t) return w;
    w.n = d.per_gate ? static_cast<int>(G) : 1;
    for (int g = 0; g < w.n; ++g) {
      w.dst[g] = f.hm + ((d.per_gate ? g * BT : 0) + b * n_t + s) * H;
      w.m[g] = m.rec(g, b);
    }
    return w;
  };
  for (int64_t b = 0; b < B; ++b) {
    const MaskedH<T> w = masked_h(0, b);
    const T* h = f.h0 + b * H;
    for (int g = 0; g < w.n; ++g)
      for (int64_t j = 0; j < H; ++j) w.dst[g][j] = w.m[g] ? h[j] * w.m[g][j] : h[j];
  }

  if (f.wh_panels) {
    if (d.per_gate) pack_panels<T>(env, f.wh_t, H, H, GH, G, H, f.wh_panels);
    else pack_panels<T>(env, f.wh_t, H, GH, GH, 1, 0, f.wh_panels);
  }

  // The recurrence: samples never interact, so each thread runs the whole loop over its own
  // rows of the batch, a step's product on its rows included -- one parallel region for all
  // steps, where a region per step and product cost more in waking and waiting threads.
  env.parallel_for(0, B, rows_per_thread(B, env.threads()), [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    T* rec = f.rec + b0 * GH;
    for (int64_t t = 0; t < n_t; ++t) {
      const int64_t ts = f.save ? t : 0;
      if (f.bias_hh)
        for (int64_t b = 0; b < nb; ++b) std::copy(f.bias_hh, f.bias_hh + GH, rec + b * GH);
      const T* hm_t = f.hm + (b0 * n_t + t) * H;
      if (d.per_gate)
        for (int64_t g = 0; g < G; ++g)
          step_product<T>(env, nb, H, H, hm_t + g * BT * H, n_t * H, f.wh_t + g * H, GH,
                          f.wh_panels, g, rec + g * H, GH, f.bias_hh != nullptr);
      else
        step_product<T>(env, nb, GH, H, hm_t, n_t * H, f.wh_t, GH, f.wh_panels, 0, rec, GH,
                        f.bias_hh != nullptr);
      for (int64_t b = b0; b < b1; ++b) {
        const T* hp = t == 0 ? f.h0 + b * H : f.out + (b * n_t + t - 1) * H;
        T* h = f.out + (b * n_t + t) * H;
        T* x_aux = f.aux + (ts * B + b) * H;
        const T* p_row = f.pre + (b * n_t + t) * GH;
        if (!d.gru) {
          LstmFwd<T> k;
          for (int g = 0; g < 4; ++g) {
            k.p[g] = p_row + g * H;
            k.bi[g] = f.bias + g * H;
            k.r[g] = f.rec + b * GH + g * H;
            k.a[g] = f.acts + ((ts * G + g) * B + b) * H;
          }
          k.cp = f.cs + (t * B + b) * H;
          k.cn = f.cs + ((t + 1) * B + b) * H;
          k.hp = hp, k.h = h, k.x = x_aux;
          k.cm = m.cand(t, b), k.uh = m.uh(t, b), k.uc = m.uc(t, b);
          k.hm = masked_h(t + 1, b);
          sweep<T>(k, H);
        } else {
          GruFwd<T> k;
          for (int g = 0; g < 3; ++g) {
            k.p[g] = p_row + g * H;
            k.bi[g] = f.bias + g * H;
            k.r[g] = f.rec + b * GH + g * H;
            k.a[g] = f.acts + ((ts * G + g) * B + b) * H;
          }
          k.hp = hp, k.h = h, k.x = x_aux;
          k.cm = m.cand(t, b), k.uh = m.uh(t, b);
          k.hm = masked_h(t + 1, b);
          sweep<T>(k, H);
        }
      }
    }
  });
  for (int64_t b = 0; b < B; ++b) {
    const T* h = f.out + (b * n_t + n_t - 1) * H;
    std::copy(h, h + H, f.h_last + b * H);
  }
  const T* c = d.gru ? f.c0 : f.cs + n_t * B * H;
  std::copy(c, c + B * H, f.c_last);
}

template <typename T>
struct Backward {
  Rows<T> d_out;  // (T, B, H) view of dL/d out; empty when out has no gradient
  const T *d_h, *d_c;  // (B, H)
  const T *x, *xm, *wi, *wh, *h0, *out, *acts, *aux, *cs, *hm;  // as saved by forward; xm null
                                                                // without input masks; wi (GH,
                                                                // D), wh (GH, H)
  T *dzh, *dzx;       // (BT, GH) scratch: pre-activation gradients (recurrent, input side: they
                      // differ only in a GRU's n gate; dzx == dzh for an LSTM)
  T *dzh_t, *dzx_t;   // (GH, BT) scratch: their transposes (dzx_t == dzh_t for an LSTM)
  T* tmp;             // (G or 1, B, H) scratch: dz_t times the recurrent weights
  T *pass, *dc;       // (B, H) scratch: dL/dh_t without d_out and the GEMM term; dL/dc_t
  T *dw_ih, *dw_hh, *db, *db_hh;  // (GH, D), (GH, H), (GH), (GH) or null
  T *dx, *dh0, *dc0;  // (B, T, D) or null, (B, H) or null, (B, H)
  T* wh_panels = nullptr;  // recurrent_panel_floats(d) scratch for the weights' panels, or null
};

template <typename T, class Env>
void backward(Env& env, const Dims& d, const Masks<T>& m, const Backward<T>& a) {
  const int64_t B = d.B, n_t = d.T, D = d.D, H = d.H, G = d.G, BT = d.BT(), GH = d.GH();
  const int64_t BH = B * H;
  std::copy(a.d_h, a.d_h + BH, a.pass);
  std::copy(a.d_c, a.d_c + BH, a.dc);
  auto dh_in = [&](int64_t b, const T* dout, bool have_tmp) {
    DhIn<T> in;
    in.pass = a.pass + b * H;
    in.dout = dout;
    if (have_tmp) {
      in.n = d.per_gate ? static_cast<int>(G) : 1;
      for (int g = 0; g < in.n; ++g) {
        in.tmp[g] = a.tmp + (d.per_gate ? g * BH : 0) + b * H;
        in.m[g] = m.rec(g, b);
      }
    }
    return in;
  };
  if (a.wh_panels) {
    if (d.per_gate) pack_panels<T>(env, a.wh, H, H, H, G, H * H, a.wh_panels);
    else pack_panels<T>(env, a.wh, GH, H, H, 1, 0, a.wh_panels);
  }
  // the reverse recurrence, each thread over its own rows of the batch (as the forward)
  env.parallel_for(0, B, rows_per_thread(B, env.threads()), [&](int64_t b0, int64_t b1) {
    const int64_t nb = b1 - b0;
    for (int64_t t = n_t - 1; t >= 0; --t) {
      const bool have_tmp = t < n_t - 1;  // the GEMM term of step t + 1
      for (int64_t b = b0; b < b1; ++b) {
        const T* x_aux = a.aux + (t * B + b) * H;
        const int64_t row = (b * n_t + t) * GH;
        if (!d.gru) {
          LstmBwd<T> k;
          k.in = dh_in(b, a.d_out(t, b), have_tmp);
          for (int g = 0; g < 4; ++g) {
            k.a[g] = a.acts + ((t * G + g) * B + b) * H;
            k.dz[g] = a.dzh + row + g * H;
          }
          k.x = x_aux, k.cp = a.cs + (t * B + b) * H;
          k.cm = m.cand(t, b), k.uh = m.uh(t, b), k.uc = m.uc(t, b);
          k.dc = a.dc + b * H, k.pass = a.pass + b * H;
          sweep<T>(k, H);
        } else {
          GruBwd<T> k;
          k.in = dh_in(b, a.d_out(t, b), have_tmp);
          for (int g = 0; g < 3; ++g) {
            k.a[g] = a.acts + ((t * G + g) * B + b) * H;
            k.dzh[g] = a.dzh + row + g * H;
            k.dzx[g] = a.dzx + row + g * H;
          }
          k.x = x_aux, k.hp = t == 0 ? a.h0 + b * H : a.out + (b * n_t + t - 1) * H;
          k.cm = m.cand(t, b), k.uh = m.uh(t, b);
          k.pass = a.pass + b * H;
          sweep<T>(k, H);
        }
      }
      if (t > 0 || a.dh0) {  // dL/d(masked h_{t-1}) = dz_t W_hh, per gate or for all gates
        const T* dz_t = a.dzh + (b0 * n_t + t) * GH;
        if (d.per_gate)
          for (int64_t g = 0; g < G; ++g)
            step_product<T>(env, nb, H, H, dz_t + g * H, n_t * GH, a.wh + g * H * H, H,
                            a.wh_panels, g, a.tmp + g * BH + b0 * H, H, false);
        else
          step_product<T>(env, nb, H, GH, dz_t, n_t * GH, a.wh, H, a.wh_panels, 0,
                          a.tmp + b0 * H, H, false);
      }
    }
    if (a.dh0)
      for (int64_t b = b0; b < b1; ++b) {
        DhOut<T> k{dh_in(b, nullptr, true), a.dh0 + b * H};
        sweep<T>(k, H);
      }
  });
  std::copy(a.dc, a.dc + BH, a.dc0);
  // weight gradients: dW = dz^T (GH, BT) times the GEMM operand (BT, .): one transposed copy of
  // dz serves both sides (two for a GRU)
  transpose<T>(env, a.dzh, BT, GH, a.dzh_t);
  if (d.gru) transpose<T>(env, a.dzx, BT, GH, a.dzx_t);
  if (d.per_gate)
    gemm<T>(env, H, H, BT, {a.dzh_t, BT, H * BT}, {a.hm, H, BT * H}, {a.dw_hh, H, H * H}, false,
            G);
  else
    gemm<T>(env, GH, H, BT, {a.dzh_t, BT}, {a.hm, H}, {a.dw_hh, H}, false);
  const T* xm = d.Gi > 0 ? a.xm : a.x;
  if (d.Gi <= 1) gemm<T>(env, GH, D, BT, {a.dzx_t, BT}, {xm, D}, {a.dw_ih, D}, false);
  else
    gemm<T>(env, H, D, BT, {a.dzx_t, BT, H * BT}, {xm, D, BT * D}, {a.dw_ih, D, H * D}, false,
            G);
  // bias gradients: the column sums of dz, row after row (each column block vectorises)
  env.parallel_for(0, GH, 64, [&](int64_t c0, int64_t c1) {
    for (auto [dz, db] : {std::pair{a.dzx, a.db}, std::pair{a.dzh, a.db_hh}}) {
      if (!db) continue;
      std::fill(db + c0, db + c1, T(0));
      for (int64_t r = 0; r < BT; ++r) {
        const T* row = dz + r * GH;
        for (int64_t j = c0; j < c1; ++j) db[j] += row[j];
      }
    }
  });
  if (!a.dx) return;
  // dL/dx: dz W_ih through the input mask(s), summed over the masks' column blocks, by blocks of
  // rows (each block's product stays in cache for its masked sum)
  if (d.Gi == 0) {
    gemm<T>(env, BT, D, GH, {a.dzx, GH}, {a.wi, D}, {a.dx, D}, false);
    return;
  }
  const int64_t cols = GH / d.Gi, rows = Env::kBlockRows, blocks = (BT + rows - 1) / rows;
  env.parallel_for(0, blocks, 1, [&](int64_t i0, int64_t i1) {
    std::vector<T> part(rows * D);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r0 = i * rows, r1 = std::min(BT, r0 + rows);
      for (int64_t g = 0; g < d.Gi; ++g) {
        env.tile(r1 - r0, D, cols, a.dzx + r0 * GH + g * cols, GH, a.wi + g * cols * D, D,
                 part.data(), D, false);
        for (int64_t r = r0; r < r1; ++r) {
          const T *src = part.data() + (r - r0) * D, *mr = m.in(g, r / n_t);
          T* dst = a.dx + r * D;
          if (g == 0) for (int64_t j = 0; j < D; ++j) dst[j] = src[j] * mr[j];
          else for (int64_t j = 0; j < D; ++j) dst[j] += src[j] * mr[j];
        }
      }
    }
  });
}

}  // namespace rds
