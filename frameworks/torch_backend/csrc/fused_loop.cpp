// PyTorch's binding of the compiled time loop (frameworks/csrc/rnn_loop.h): the speed path of
// frameworks/torch_backend/fused_loop.py (framework.torch_loop=cpp). It allocates the buffers as
// tensors, runs the loop on ATen's threads, and computes each GEMM tile with oneDNN's brgemm
// micro-kernel (at::native::cpublas::brgemm, float32; other types through at::mm).
//
// Why brgemm: measured on the bench machine (AVX-512, one thread), 85-115 GFLOP/s per tile
// against 35-80 for at::mm (MKL), whose per-call packing of B dominates the small-M per-step
// products. A CPU without brgemm support gets the BLAS call inside brgemm: correct, slower.
//
// Why whole-layer: at the classifier shape (B 64, T 50, H 128) the Python/autograd overhead of
// a per-step loop (~10 autograd nodes and ~25 kernel launches per step) cost about as much as
// the matmuls; here one call runs the forward and one the backward, input side included.

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/native/CPUBlas.h>
#include <torch/library.h>

#include <array>
#include <optional>
#include <vector>

#include "../../csrc/rnn_loop.h"

namespace {

using at::Tensor;
using Opt = std::optional<Tensor>;

constexpr int64_t kTileK = 256;  // brgemm's reduction per call: longer ones ran at half speed

struct TorchEnv {
  // brgemm reads its operands in place: cache-sized tiles and blocks of rows
  static constexpr int64_t kTileM = 64, kTileN = 128, kBlockRows = 64;
  static constexpr int64_t kPanelN = 32;  // the step's weights in 32-column panels (float32)
  int64_t threads() const { return at::get_num_threads(); }
  template <class F>
  void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
    at::parallel_for(begin, end, grain, f);
  }
  void tile(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
            int64_t ldb, float* C, int64_t ldc, bool add) {
    for (int64_t k0 = 0; k0 < K; k0 += kTileK)
      at::native::cpublas::brgemm(M, N, std::min(kTileK, K - k0), lda, ldb, ldc, add || k0 > 0,
                                  A + k0, B + k0 * ldb, C, false);
  }
  template <typename T>
  void tile(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb,
            T* C, int64_t ldc, bool add) {  // float64: through ATen on views of the same memory
    const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
    const Tensor a = at::from_blob(const_cast<T*>(A), {M, K}, {lda, 1}, opts);
    const Tensor b = at::from_blob(const_cast<T*>(B), {K, N}, {ldb, 1}, opts);
    Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, opts);
    if (add) c.addmm_(a, b);
    else at::mm_out(c, a, b);
  }
};

// Scratch memory, reused from call to call (per thread, one buffer per slot, grown as needed):
// the large temporaries of a call (x's side of the pre-activations, dz and its transpose) in
// fresh memory each call cost first-touch page faults comparable to a GEMM. Only for what dies
// within the call; what the backward keeps is allocated per call.
enum Slot { kPre, kRec, kDzh, kDzx, kDzhT, kDzxT, kPanelsH, kPanelsX, kSlots };

Tensor scratch(Slot slot, at::IntArrayRef sizes, const at::TensorOptions& opts) {
  thread_local std::array<Tensor, kSlots> cache;
  int64_t n = 1;
  for (const int64_t s : sizes) n *= s;
  Tensor& buf = cache[slot];
  if (!buf.defined() || buf.numel() < n || buf.scalar_type() != opts.dtype().toScalarType())
    buf = at::empty({n}, opts);
  return buf.narrow(0, 0, n).view(sizes);
}

// Scratch for weights in panels (rds::pack_panels): brgemm's float32 tiles only; float64 goes
// through at::mm, a call per panel
template <typename T>
T* panels(Slot slot, int64_t floats, const at::TensorOptions& opts) {
  if constexpr (!std::is_same_v<T, float>) return nullptr;
  return scratch(slot, {floats}, opts).data_ptr<T>();
}

template <typename T>
rds::Rows<T> rows_of(const Opt& x) {
  if (!x || !x->defined()) return {};
  return {x->data_ptr<T>(), x->stride(0), x->stride(1)};
}

template <typename T>
T* ptr(const Tensor& x) { return x.numel() ? x.data_ptr<T>() : nullptr; }

template <typename T>
rds::Masks<T> masks_of(const Opt& m_in, const Opt& m_rec, const Opt& cand, const Opt& uh,
                       const Opt& uc) {
  return {rows_of<T>(m_in), rows_of<T>(m_rec), rows_of<T>(cand), rows_of<T>(uh), rows_of<T>(uc)};
}

rds::Dims dims_of(const Tensor& x, const Tensor& w_hh, const Opt& m_in, bool per_gate, bool gru) {
  const int64_t H = w_hh.size(1);
  return {x.size(0), x.size(1), x.size(2), H, w_hh.size(0) / H,
          m_in && m_in->defined() ? m_in->size(0) : 0, per_gate, gru};
}

// ---- forward -----------------------------------------------------------------------------------
// -> out (B, T, H), h_T, c_T, then what the backward reads: acts, aux, cs, hm, xm
template <typename T>
std::vector<Tensor> forward_impl(const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                                 const Tensor& bias, const Opt& bias_hh, const Opt& m_in,
                                 const Tensor& h0, const Tensor& c0, const Opt& m_rec,
                                 bool per_gate, const Opt& cand, const Opt& uh, const Opt& uc,
                                 bool gru, bool save) {
  const rds::Dims d = dims_of(x, w_hh, m_in, per_gate, gru);
  const auto opts = x.options();
  const int64_t steps = save ? d.T : 1;
  const Tensor wi_t = w_ih.t().contiguous(), wh_t = w_hh.t().contiguous();
  const Tensor bhh = bias_hh && bias_hh->defined() ? bias_hh->contiguous() : Tensor();
  Tensor xm = d.Gi ? at::empty({d.Gi, d.BT(), d.D}, opts) : at::empty({0}, opts);
  Tensor out = at::empty({d.B, d.T, d.H}, opts);
  Tensor acts = at::empty({steps, d.G, d.B, d.H}, opts);
  Tensor aux = at::empty({steps, d.B, d.H}, opts);
  Tensor cs = gru ? at::empty({0}, opts) : at::empty({d.T + 1, d.B, d.H}, opts);
  Tensor hm = at::empty({per_gate ? d.G : 1, d.BT(), d.H}, opts);
  Tensor h_last = at::empty({d.B, d.H}, opts), c_last = at::empty({d.B, d.H}, opts);
  const rds::Forward<T> f{
      x.data_ptr<T>(), wi_t.data_ptr<T>(), wh_t.data_ptr<T>(), bias.data_ptr<T>(),
      bhh.defined() ? bhh.data_ptr<T>() : nullptr, h0.data_ptr<T>(), c0.data_ptr<T>(),
      ptr<T>(xm), scratch(kPre, {d.BT(), d.GH()}, opts).data_ptr<T>(),
      scratch(kRec, {d.B, d.GH()}, opts).data_ptr<T>(), out.data_ptr<T>(), acts.data_ptr<T>(),
      aux.data_ptr<T>(), ptr<T>(cs), hm.data_ptr<T>(), h_last.data_ptr<T>(),
      c_last.data_ptr<T>(), save,
      panels<T>(kPanelsH, rds::recurrent_panel_floats<TorchEnv>(d), opts),
      panels<T>(kPanelsX, rds::input_panel_floats<TorchEnv>(d), opts)};
  TorchEnv env;
  rds::forward<T>(env, d, masks_of<T>(m_in, m_rec, cand, uh, uc), f);
  if (!save) xm = at::empty({0}, opts);
  return {out, h_last, c_last, acts, aux, cs, hm, xm};
}

// ---- backward ----------------------------------------------------------------------------------
// -> dx, dw_ih, dw_hh, db, db_hh, dh0, dc0 (dx, db_hh, dh0 empty when not needed)
template <typename T>
std::vector<Tensor> backward_impl(const Tensor& d_out, const Tensor& d_h, const Tensor& d_c,
                                  const Tensor& x, const Tensor& w_ih, const Tensor& w_hh,
                                  const Opt& m_in, const Tensor& h0, const Tensor& out,
                                  const Tensor& acts, const Tensor& aux, const Tensor& cs,
                                  const Tensor& hm, const Tensor& xm, const Opt& m_rec,
                                  bool per_gate, const Opt& cand, const Opt& uh, const Opt& uc,
                                  bool gru, bool need_x, bool need_h0, bool need_bias_hh) {
  const rds::Dims d = dims_of(x, w_hh, m_in, per_gate, gru);
  const auto opts = acts.options();
  const int64_t BT = d.BT(), GH = d.GH();
  Tensor dzh = scratch(kDzh, {BT, GH}, opts), dzh_t = scratch(kDzhT, {GH, BT}, opts);
  Tensor dzx = gru ? scratch(kDzx, {BT, GH}, opts) : dzh;
  Tensor dzx_t = gru ? scratch(kDzxT, {GH, BT}, opts) : dzh_t;
  Tensor tmp = at::empty({per_gate ? d.G : 1, d.B, d.H}, opts);
  Tensor pass = at::empty({d.B, d.H}, opts), dc = at::empty({d.B, d.H}, opts);
  Tensor dw_ih = at::empty({GH, d.D}, opts), dw_hh = at::empty({GH, d.H}, opts);
  Tensor db = at::empty({GH}, opts);
  Tensor db_hh = need_bias_hh ? at::empty({GH}, opts) : at::empty({0}, opts);
  Tensor dx = need_x ? at::empty({d.B, d.T, d.D}, opts) : at::empty({0}, opts);
  Tensor dh0 = need_h0 ? at::empty({d.B, d.H}, opts) : at::empty({0}, opts);
  Tensor dc0 = at::empty({d.B, d.H}, opts);
  const Tensor dh_in = d_h.contiguous(), dc_in = d_c.contiguous();
  const rds::Backward<T> b{
      rows_of<T>(d_out), dh_in.data_ptr<T>(), dc_in.data_ptr<T>(), x.data_ptr<T>(), ptr<T>(xm),
      w_ih.data_ptr<T>(), w_hh.data_ptr<T>(), h0.data_ptr<T>(), out.data_ptr<T>(),
      acts.data_ptr<T>(), aux.data_ptr<T>(), ptr<T>(cs), hm.data_ptr<T>(), dzh.data_ptr<T>(),
      dzx.data_ptr<T>(), dzh_t.data_ptr<T>(), dzx_t.data_ptr<T>(), tmp.data_ptr<T>(),
      pass.data_ptr<T>(), dc.data_ptr<T>(), dw_ih.data_ptr<T>(),
      dw_hh.data_ptr<T>(), db.data_ptr<T>(), ptr<T>(db_hh), ptr<T>(dx), ptr<T>(dh0),
      dc0.data_ptr<T>(), panels<T>(kPanelsH, rds::recurrent_panel_floats<TorchEnv>(d), opts)};
  TorchEnv env;
  rds::backward<T>(env, d, masks_of<T>(m_in, m_rec, cand, uh, uc), b);
  return {dx, dw_ih, dw_hh, db, db_hh, dh0, dc0};
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
    result = forward_impl<scalar_t>(x.contiguous(), w_ih, w_hh, bias.contiguous(), bias_hh,
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
    result = backward_impl<scalar_t>(d_out, d_h, d_c, x.contiguous(), w_ih.contiguous(),
                                     w_hh.contiguous(), m_in, h0.contiguous(), out, acts, aux,
                                     cs, hm, xm, m_rec, per_gate, cand, uh, uc, gru, need_x,
                                     need_h0, need_bias_hh);
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
