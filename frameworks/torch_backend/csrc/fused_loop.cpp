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
#include <ATen/native/CPUBlas.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
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

inline int64_t grain_rows(int64_t width) {
  // rows per task: starting threads costs more than a small elementwise pass
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, width));
}

// ---- GEMM --------------------------------------------------------------------------------------
// C (M x N) = A (M x K) B (K x N) (+ C when `add`), row-major, each with its own row stride.
// float: oneDNN's brgemm micro-kernels (at::native::cpublas::brgemm, single-threaded) over
// 64 x 128 x 256 tiles, the tiles spread over the threads, column blocks outermost so that a
// thread keeps its block of B in cache across the row blocks. Measured on the bench machine
// (AVX-512), per thread: 85-115 GFLOP/s against 35-80 for at::mm (MKL), whose per-call packing
// of B dominates the small-M per-step products; a CPU without brgemm support gets the BLAS call
// inside brgemm. Other types: at::mm.
constexpr int64_t kTileM = 64, kTileN = 128, kTileK = 256;

template <typename T>
struct Mat {  // a row-major matrix in memory: element (i, j) at p[i * ld + j]; the next of a
  T* p;       // batch of them at p + step
  int64_t ld, step = 0;
};

// C_i = A_i B_i (+ C_i when `add`) for i < batch; A_i (M x K), B_i (K x N), C_i (M x N).
template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, Mat<const T> A, Mat<const T> B, Mat<T> C, bool add,
          int64_t batch = 1) {
  if (M == 0 || N == 0 || batch == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    // smaller tiles until every thread has one (a step's product can be a single tile);
    // columns first: each thread then reads only its part of B, the weights
    int64_t tm = kTileM, tn = kTileN;
    const auto tiles = [&] { return batch * ((M + tm - 1) / tm) * ((N + tn - 1) / tn); };
    while (tiles() < at::get_num_threads() && (tn > 32 || tm > 16)) {
      if (tn > 32 && N > tn / 2) tn /= 2;
      else if (tm > 16 && M > tm / 2) tm /= 2;
      else break;
    }
    const int64_t nm = (M + tm - 1) / tm, per = tiles() / batch;
    at::parallel_for(0, tiles(), 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t z = i / per, n0 = (i % per / nm) * tn, m0 = (i % nm) * tm;
        const int64_t mb = std::min(tm, M - m0), nb = std::min(tn, N - n0);
        const T *a = A.p + z * A.step + m0 * A.ld, *b = B.p + z * B.step + n0;
        T* c = C.p + z * C.step + m0 * C.ld + n0;
        for (int64_t k0 = 0; k0 < K; k0 += kTileK)
          at::native::cpublas::brgemm(mb, nb, std::min(kTileK, K - k0), A.ld, B.ld, C.ld,
                                      add || k0 > 0, a + k0, b + k0 * B.ld, c, false);
      }
    });
  } else {  // through ATen on views of the same memory
    const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    for (int64_t z = 0; z < batch; ++z) {
      const Tensor a = at::from_blob(const_cast<T*>(A.p + z * A.step), {M, K}, {A.ld, 1}, opts);
      const Tensor b = at::from_blob(const_cast<T*>(B.p + z * B.step), {K, N}, {B.ld, 1}, opts);
      Tensor c = at::from_blob(C.p + z * C.step, {M, N}, {C.ld, 1}, opts);
      if (add) c.addmm_(a, b);
      else at::mm_out(c, a, b);
    }
  }
}

// Scratch memory, reused from call to call (per thread, one buffer per slot, grown as needed):
// the large temporaries of a call (x's side of the pre-activations, dz and its transpose, the
// per-gate parts of dx) in fresh memory each call cost first-touch page faults comparable to a
// GEMM. Only for what dies within the call; what the backward keeps is allocated per call.
enum Slot { kPre, kDzh, kDzx, kDzhT, kDzxT, kPart, kSlots };

Tensor scratch(Slot slot, at::IntArrayRef sizes, const at::TensorOptions& opts) {
  thread_local std::array<Tensor, kSlots> cache;
  int64_t n = 1;
  for (const int64_t s : sizes) n *= s;
  Tensor& buf = cache[slot];
  if (!buf.defined() || buf.numel() < n || buf.scalar_type() != opts.dtype().toScalarType())
    buf = at::empty({n}, opts);
  return buf.narrow(0, 0, n).view(sizes);
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
// blocks in registers (AVX2) inside a tile; a strided ATen copy, whose accesses alias in L1 at
// these power-of-two row lengths, was 5-10x slower
template <typename T>
Tensor transposed(const Tensor& src, Tensor dst) {
  constexpr int64_t kTile = 32;
  const int64_t rows = src.size(0), cols = src.size(1);
  const T* s = src.data_ptr<T>();
  T* d = dst.data_ptr<T>();
  const int64_t nr = (rows + kTile - 1) / kTile, nc = (cols + kTile - 1) / kTile;
  at::parallel_for(0, nr * nc, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r0 = (i / nc) * kTile, c0 = (i % nc) * kTile;
      const int64_t r1 = std::min(r0 + kTile, rows), c1 = std::min(c0 + kTile, cols);
      int64_t rv = r0, cv = c0;  // the part covered by whole 8 x 8 blocks: [r0, rv) x [c0, cv)
#ifdef RDS_AVX2
      if constexpr (std::is_same_v<T, float>) {
        rv = r0 + (r1 - r0) / 8 * 8, cv = c0 + (c1 - c0) / 8 * 8;
        for (int64_t r = r0; r < rv; r += 8)
          for (int64_t c = c0; c < cv; c += 8) transpose8(s + r * cols + c, cols, d + c * rows + r, rows);
      }
#endif
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = (c < cv ? rv : r0); r < r1; ++r) d[c * rows + r] = s[r * cols + c];
    }
  });
  return dst;
}

// ---- forward -----------------------------------------------------------------------------------
// Layouts: every (t, b) matrix is batch-major (row b * T + t), as x and out are, so that the
// input side needs no transposed copy of x; a step's GEMM reads its B rows with stride T.
template <typename T>
std::vector<Tensor> forward_impl(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                                 const Tensor& bias, const Opt& bias_hh, const Opt& m_in,
                                 const Tensor& h0, const Tensor& c0, const Opt& m_rec,
                                 bool per_gate, const Opt& cand, const Opt& uh, const Opt& uc,
                                 bool gru, bool save) {
  const int64_t B = x.size(0), n_t = x.size(1), D = x.size(2);
  const int64_t GH = w_hh.size(0), H = w_hh.size(1), G = GH / H, BT = B * n_t;
  const auto opts = x.options();
  // the input side: x times its mask(s) (Gi = 1 tied, G per gate; x itself without a mask),
  // kept for the input weights' gradient, then one GEMM (or one per gate) for all steps
  const bool has_m_in = m_in && m_in->defined();
  const int64_t Gi = has_m_in ? m_in->size(0) : 1;
  Tensor xm = has_m_in ? at::empty({Gi, BT, D}, opts) : x.view({1, BT, D});
  if (has_m_in) {
    const Rows<T> m(*m_in);
    const T* x_p = x.data_ptr<T>();
    T* xm_p = xm.data_ptr<T>();
    at::parallel_for(0, Gi * B, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t g = r / B, b = r % B;
        const T* mr = m(g, b);
        for (int64_t t = 0; t < n_t; ++t) {
          const T* xr = x_p + (b * n_t + t) * D;
          T* dst = xm_p + (g * BT + b * n_t + t) * D;
          for (int64_t j = 0; j < D; ++j) dst[j] = xr[j] * mr[j];
        }
      }
    });
  }
  const Tensor wi_t = w_ih.t().contiguous();  // (D, GH): the GEMMs' B is row-major
  const Tensor wh_t = w_hh.t().contiguous();  // (H, GH)
  Tensor pre = scratch(kPre, {BT, GH}, opts);  // x's side, without the bias
  T* pre_p = pre.data_ptr<T>();
  const T *xm_p = xm.data_ptr<T>(), *wi_p = wi_t.data_ptr<T>(), *wh_p = wh_t.data_ptr<T>();
  if (Gi == 1) gemm<T>(BT, GH, D, {xm_p, D}, {wi_p, GH}, {pre_p, GH}, false);
  else gemm<T>(BT, H, D, {xm_p, D, BT * D}, {wi_p, GH, H}, {pre_p, GH, H}, false, G);

  Tensor out = at::empty({B, n_t, H}, opts);
  // saved for the backward: activations (T, G, B, H) and, per step, LSTM tanh(c_new) or GRU's
  // recurrent n pre-activation (it sits inside the reset product)
  Tensor acts = at::empty({save ? n_t : 1, G, B, H}, opts);
  Tensor aux = at::empty({save ? n_t : 1, B, H}, opts);
  Tensor cs = gru ? at::empty({0}, opts) : at::empty({n_t + 1, B, H}, opts);
  // masked h_{t-1} per step, the left operand of the recurrent GEMM (kept for dW)
  Tensor hm = per_gate ? at::empty({G, BT, H}, opts) : at::empty({BT, H}, opts);
  Tensor rec = at::empty({B, GH}, opts);  // h's side of step t, bias_hh included
  const bool has_bias_hh = bias_hh && bias_hh->defined();
  if (!gru) cs[0].copy_(c0);

  const Rows<T> mask = rows_of<T>(m_rec), cm = rows_of<T>(cand), zh = rows_of<T>(uh),
                zc = rows_of<T>(uc);
  T* out_p = out.data_ptr<T>();
  T* acts_p = acts.data_ptr<T>();
  T* aux_p = aux.data_ptr<T>();
  T* cs_p = gru ? nullptr : cs.data_ptr<T>();
  T* hm_p = hm.data_ptr<T>();
  T* rec_p = rec.data_ptr<T>();
  const T* h0_p = h0.data_ptr<T>();
  const T* bias_p = bias.data_ptr<T>();
  const T* bhh_p = has_bias_hh ? bias_hh->data_ptr<T>() : nullptr;

  auto masked_h = [&](int64_t s, int64_t b) {  // where step s's GEMM operand row b goes
    MaskedH<T> w;
    if (s >= n_t) return w;
    w.n = per_gate ? static_cast<int>(G) : 1;
    for (int g = 0; g < w.n; ++g) {
      w.dst[g] = hm_p + ((per_gate ? g * BT : 0) + b * n_t + s) * H;
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
    if (has_bias_hh)
      for (int64_t b = 0; b < B; ++b) std::copy(bhh_p, bhh_p + GH, rec_p + b * GH);
    if (per_gate)
      gemm<T>(B, H, H, {hm_p + t * H, n_t * H, BT * H}, {wh_p, GH, H}, {rec_p, GH, H},
              has_bias_hh, G);
    else
      gemm<T>(B, GH, H, {hm_p + t * H, n_t * H}, {wh_p, GH}, {rec_p, GH}, has_bias_hh);
    at::parallel_for(0, B, grain_rows(GH), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T* hp = t == 0 ? h0_p + b * H : out_p + (b * n_t + t - 1) * H;
        T* h = out_p + (b * n_t + t) * H;
        T* x_aux = aux_p + (ts * B + b) * H;
        const T* p_row = pre_p + (b * n_t + t) * GH;
        if (!gru) {
          LstmFwd<T> k;
          for (int g = 0; g < 4; ++g) {
            k.p[g] = p_row + g * H;
            k.bi[g] = bias_p + g * H;
            k.r[g] = rec_p + b * GH + g * H;
            k.a[g] = acts_p + ((ts * G + g) * B + b) * H;
          }
          k.cp = cs_p + (t * B + b) * H;
          k.cn = cs_p + ((t + 1) * B + b) * H;
          k.hp = hp, k.h = h, k.x = x_aux;
          k.cm = cm(t, b), k.uh = zh(t, b), k.uc = zc(t, b);
          k.hm = masked_h(t + 1, b);
          sweep<T>(k, H);
        } else {
          GruFwd<T> k;
          for (int g = 0; g < 3; ++g) {
            k.p[g] = p_row + g * H;
            k.bi[g] = bias_p + g * H;
            k.r[g] = rec_p + b * GH + g * H;
            k.a[g] = acts_p + ((ts * G + g) * B + b) * H;
          }
          k.hp = hp, k.h = h, k.x = x_aux;
          k.cm = cm(t, b), k.uh = zh(t, b);
          k.hm = masked_h(t + 1, b);
          sweep<T>(k, H);
        }
      }
    });
  }
  Tensor h_last = out.select(1, n_t - 1).clone();
  Tensor c_last = gru ? c0.clone() : cs[n_t].clone();
  // x times its mask(s), kept for dW_ih; without a mask the backward reads x itself
  if (!save || !has_m_in) xm = at::empty({0}, opts);
  return {out, h_last, c_last, acts, aux, cs, hm, xm};
}

// ---- backward ----------------------------------------------------------------------------------
template <typename T>
std::vector<Tensor> backward_impl(const Tensor& d_out, const Tensor& d_h, const Tensor& d_c,
                                  const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                                  const Opt& m_in, const Tensor& h0, const Tensor& out,
                                  const Tensor& acts, const Tensor& aux, const Tensor& cs,
                                  const Tensor& hm, const Tensor& xm_saved, const Opt& m_rec,
                                  bool per_gate, const Opt& cand, const Opt& uh, const Opt& uc,
                                  bool gru, bool need_x, bool need_h0, bool need_bias_hh) {
  const int64_t n_t = acts.size(0), G = acts.size(1), B = acts.size(2), H = acts.size(3);
  const int64_t D = x.size(2), BT = B * n_t, BH = B * H, GH = G * H;
  const Tensor xm = xm_saved.numel() ? xm_saved : x.view({1, BT, D});
  const auto opts = acts.options();
  // pre-activation gradients (B T, G H), batch-major; the recurrent and the input side differ
  // only in a GRU's n gate (the reset product)
  Tensor dzh = scratch(kDzh, {BT, GH}, opts);
  Tensor dzx = gru ? scratch(kDzx, {BT, GH}, opts) : dzh;
  Tensor tmp = per_gate ? at::empty({G, B, H}, opts) : at::empty({B, H}, opts);
  Tensor pass = d_h.contiguous().clone();  // dL/dh_t without d_out and the GEMM term
  Tensor dc = d_c.contiguous().clone();    // dL/dc_t (a GRU carries c untouched)

  const Rows<T> d_o(d_out), mask = rows_of<T>(m_rec), cm = rows_of<T>(cand),
                zh = rows_of<T>(uh), zc = rows_of<T>(uc);
  const T *acts_p = acts.data_ptr<T>(), *aux_p = aux.data_ptr<T>(), *out_p = out.data_ptr<T>(),
          *h0_p = h0.data_ptr<T>(), *tmp_p = tmp.data_ptr<T>(), *wh_p = w_hh.data_ptr<T>();
  const T* cs_p = gru ? nullptr : cs.data_ptr<T>();
  T *dzh_p = dzh.data_ptr<T>(), *dzx_p = dzx.data_ptr<T>(), *pass_p = pass.data_ptr<T>(),
    *dc_p = dc.data_ptr<T>(), *tmpw_p = tmp.data_ptr<T>();
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

  for (int64_t t = n_t - 1; t >= 0; --t) {
    at::parallel_for(0, B, grain_rows(GH), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T* x_aux = aux_p + (t * B + b) * H;
        const int64_t row = (b * n_t + t) * GH;
        if (!gru) {
          LstmBwd<T> k;
          k.in = dh_in(b, d_o(t, b));
          for (int g = 0; g < 4; ++g) {
            k.a[g] = acts_p + ((t * G + g) * B + b) * H;
            k.dz[g] = dzh_p + row + g * H;
          }
          k.x = x_aux, k.cp = cs_p + (t * B + b) * H;
          k.cm = cm(t, b), k.uh = zh(t, b), k.uc = zc(t, b);
          k.dc = dc_p + b * H, k.pass = pass_p + b * H;
          sweep<T>(k, H);
        } else {
          GruBwd<T> k;
          k.in = dh_in(b, d_o(t, b));
          for (int g = 0; g < 3; ++g) {
            k.a[g] = acts_p + ((t * G + g) * B + b) * H;
            k.dzh[g] = dzh_p + row + g * H;
            k.dzx[g] = dzx_p + row + g * H;
          }
          k.x = x_aux, k.hp = t == 0 ? h0_p + b * H : out_p + (b * n_t + t - 1) * H;
          k.cm = cm(t, b), k.uh = zh(t, b);
          k.pass = pass_p + b * H;
          sweep<T>(k, H);
        }
      }
    });
    if (t > 0 || need_h0) {  // dL/d(masked h_{t-1}) = dz_t W_hh, per gate or for all gates
      const T* dz_t = dzh_p + t * GH;
      if (per_gate)
        gemm<T>(B, H, H, {dz_t, n_t * GH, H}, {wh_p, H, H * H}, {tmpw_p, H, BH}, false, G);
      else
        gemm<T>(B, H, GH, {dz_t, n_t * GH}, {wh_p, H}, {tmpw_p, H}, false);
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
  // weight gradients: dW = dz^T (G H, B T) times the GEMM operand (B T, .), one transposed copy
  // of dz serving both sides (two for a GRU)
  const Tensor dzh_t = transposed<T>(dzh, scratch(kDzhT, {GH, BT}, opts));
  const Tensor dzx_t = gru ? transposed<T>(dzx, scratch(kDzxT, {GH, BT}, opts)) : dzh_t;
  Tensor dw_hh = at::empty({GH, H}, opts), dw_ih = at::empty({GH, D}, opts);
  const T *dzh_tp = dzh_t.data_ptr<T>(), *dzx_tp = dzx_t.data_ptr<T>(),
          *hm_p = hm.data_ptr<T>(), *xm_p = xm.data_ptr<T>(), *wi_p = w_ih.data_ptr<T>();
  T *dwh_p = dw_hh.data_ptr<T>(), *dwi_p = dw_ih.data_ptr<T>();
  if (per_gate)
    gemm<T>(H, H, BT, {dzh_tp, BT, H * BT}, {hm_p, H, BT * H}, {dwh_p, H, H * H}, false, G);
  else
    gemm<T>(GH, H, BT, {dzh_tp, BT}, {hm_p, H}, {dwh_p, H}, false);
  const int64_t Gi = xm.size(0);
  if (Gi == 1) gemm<T>(GH, D, BT, {dzx_tp, BT}, {xm_p, D}, {dwi_p, D}, false);
  else gemm<T>(H, D, BT, {dzx_tp, BT, H * BT}, {xm_p, D, BT * D}, {dwi_p, D, H * D}, false, G);
  Tensor db = dzx.sum(0);
  Tensor db_hh = need_bias_hh ? dzh.sum(0) : at::empty({0}, opts);
  // dL/dx: dz W_ih through the input mask(s), summed over the gates' masks when per gate
  Tensor dx = at::empty({0}, opts);
  if (need_x) {
    dx = at::empty({B, n_t, D}, opts);
    T* dx_p = dx.data_ptr<T>();
    const bool has_m_in = m_in && m_in->defined();
    if (!has_m_in) {
      gemm<T>(BT, D, GH, {dzx_p, GH}, {wi_p, D}, {dx_p, D}, false);
    } else {  // dz_g W_ih,g for each mask, then one pass: dx = sum over g of mask_g * that
      Tensor part = scratch(kPart, {Gi, BT, D}, opts);
      T* part_p = part.data_ptr<T>();
      if (Gi == 1) gemm<T>(BT, D, GH, {dzx_p, GH}, {wi_p, D}, {part_p, D}, false);
      else gemm<T>(BT, D, H, {dzx_p, GH, H}, {wi_p, D, H * D}, {part_p, D, BT * D}, false, G);
      const Rows<T> m = rows_of<T>(m_in);
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          for (int64_t r = b * n_t; r < (b + 1) * n_t; ++r) {
            T* dst = dx_p + r * D;
            for (int64_t g = 0; g < Gi; ++g) {
              const T *src = part_p + (g * BT + r) * D, *mr = m(g, b);
              if (g == 0) for (int64_t j = 0; j < D; ++j) dst[j] = src[j] * mr[j];
              else for (int64_t j = 0; j < D; ++j) dst[j] += src[j] * mr[j];
            }
          }
      });
    }
  }
  return {dx, dw_ih, dw_hh, db, db_hh, dh0, dc};
}

void check_rows(const Opt& x, const char* name) {
  TORCH_CHECK(!x || !x->defined() || (x->dim() == 3 && x->stride(2) == 1), name,
              " must be a 3-d view with contiguous rows");
}

std::vector<Tensor> forward(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                            const Tensor& bias, const Opt& bias_hh, const Opt& m_in,
                            const Tensor& h0, const Tensor& c0, const Opt& m_rec, bool per_gate,
                            const Opt& cand, const Opt& uh, const Opt& uc, bool gru, bool save) {
  TORCH_CHECK(x.dim() == 3 && x.size(1) > 0, "x must be (B, T, D) with T > 0");
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == (gru ? 3 : 4) * w_hh.size(1),
              "w_hh must be (G H, H)");
  TORCH_CHECK(!per_gate || (m_rec && m_rec->defined()), "per_gate needs a recurrent mask");
  check_rows(m_in, "m_in");
  check_rows(m_rec, "m_rec");
  check_rows(cand, "cand");
  check_rows(uh, "uh");
  check_rows(uc, "uc");
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rds_fused_loop_forward", [&] {
    result = forward_impl<scalar_t>(x.contiguous(), w_ih.contiguous(), w_hh.contiguous(),
                                    bias.contiguous(), bias_hh ? std::optional(bias_hh->contiguous()) : bias_hh,
                                    m_in, h0.contiguous(), c0.contiguous(), m_rec, per_gate,
                                    cand, uh, uc, gru, save);
  });
  return result;
}

std::vector<Tensor> backward(const Tensor& d_out, const Tensor& d_h, const Tensor& d_c,
                             const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                             const Opt& m_in, const Tensor& h0, const Tensor& out,
                             const Tensor& acts, const Tensor& aux, const Tensor& cs,
                             const Tensor& hm, const Tensor& xm, const Opt& m_rec, bool per_gate,
                             const Opt& cand, const Opt& uh, const Opt& uc, bool gru,
                             bool need_x, bool need_h0, bool need_bias_hh) {
  TORCH_CHECK(d_out.dim() == 3 && d_out.stride(2) == 1, "d_out must be (T, B, H), rows contiguous");
  std::vector<Tensor> result;
  AT_DISPATCH_FLOATING_TYPES(acts.scalar_type(), "rds_fused_loop_backward", [&] {
    result = backward_impl<scalar_t>(d_out, d_h, d_c, x.contiguous(), w_ih.contiguous(), w_hh.contiguous(),
                                     m_in, h0.contiguous(), out, acts, aux, cs, hm, xm, m_rec,
                                     per_gate, cand, uh, uc, gru, need_x, need_h0, need_bias_hh);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY(rds_fused_loop, m) {
  m.def("forward(Tensor x, Tensor w_ih, Tensor w_hh, Tensor bias, Tensor? bias_hh, "
        "Tensor? m_in, Tensor h0, Tensor c0, Tensor? m_rec, bool per_gate, Tensor? cand, "
        "Tensor? uh, Tensor? uc, bool gru, bool save) -> Tensor[]");
  m.def("backward(Tensor d_out, Tensor d_h, Tensor d_c, Tensor x, Tensor w_ih, Tensor w_hh, "
        "Tensor? m_in, Tensor h0, Tensor out, Tensor acts, Tensor aux, Tensor cs, Tensor hm, "
        "Tensor xm, Tensor? m_rec, bool per_gate, Tensor? cand, Tensor? uh, Tensor? uc, "
        "bool gru, bool need_x, bool need_h0, bool need_bias_hh) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(rds_fused_loop, CPU, m) {
  m.impl("forward", &forward);
  m.impl("backward", &backward);
}
