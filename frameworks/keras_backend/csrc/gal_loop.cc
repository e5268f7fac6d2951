// TensorFlow's binding of the compiled time loop (frameworks/csrc/rnn_loop.h): the speed path
// of the Keras recurrent layer (frameworks/keras_backend/native_loop.py). Two ops, the forward
// and its hand-written backward, float32 on CPU; each GEMM tile is an Eigen product on one
// thread, the tiles and the per-step row passes spread over the op's intra-op thread pool.
//
// Why: TensorFlow runs a tf.while_loop step as a dozen small ops (Keras' stock LSTM as well);
// at the classifier shape (B 64, T 50, H 128) their per-op cost is most of a step. Here one op
// runs the whole forward and one the whole backward, the input side included.
//
// What: the LSTM (attr gru false; gate order i, f, g, o) or PyTorch's GRU (gru true, Keras'
// reset_after=True; gate order r, z, n, the recurrent side of n with its bias bias_hh inside the
// reset product), each with the Gal family's masks, Semeniuta's candidate mask and Zoneout's
// state mix, exactly the step of frameworks/keras_backend/cells.py.
//
// Keras layout: x (B, T, D) batch-major, kernel (D, GH), recurrent kernel (H, GH), bias (GH),
// bias_hh (GH), or (0) for none (the LSTM). Gal masks (Gm, Bm, X): Gm 0 (none), 1 (tied) or G
// (per gate), Bm 1 (one per batch) or B (per sample). Per-step masks time-major (Tm, Bm, H): Tm
// 1 (one per sequence) or T, Bm 1 or B, or (0, Bm, H) when absent: the candidate mask `cand`
// and Zoneout's updates `uh` of h and `uc` of c (1 takes the update; an expectation at
// evaluation arrives as a (1, 1, H) fill). A GRU carries no c: its uc must be absent, and c
// passes through (c_T = c0, dc0 = d_c).

#include <Eigen/Core>

#include <algorithm>
#include <functional>
#include <string>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

#include "../../csrc/rnn_loop.h"

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

struct TfEnv {
  // Eigen packs both operands on every call: a product over all rows and columns where the
  // threads allow, and blocks of rows long enough to pay for packing the weights
  static constexpr int64_t kTileM = 1 << 20, kTileN = 1 << 20, kBlockRows = 256;
  static constexpr int64_t kPanelN = 0;  // Eigen packs its operands per call: no panels
  tsl::thread::ThreadPool* pool;
  int n;
  int64_t threads() const { return n; }
  template <class F>
  void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
    const int64_t total = end - begin;
    if (total <= 0) return;
    const int64_t chunks = std::min<int64_t>(n, (total + grain - 1) / grain);
    if (chunks <= 1) {
      f(begin, end);
      return;
    }
    const int64_t per = (total + chunks - 1) / chunks;
    pool->ParallelFor(chunks, tsl::thread::ThreadPool::SchedulingParams::Fixed(1),
                      [&](int64_t c0, int64_t c1) {
                        for (int64_t c = c0; c < c1; ++c)
                          f(begin + c * per, std::min(end, begin + (c + 1) * per));
                      });
  }
  void tile(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
            int64_t ldb, float* C, int64_t ldc, bool add) {
    using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using Stride = Eigen::OuterStride<>;
    const Eigen::Map<const Mat, 0, Stride> a(A, M, K, Stride(lda)), b(B, K, N, Stride(ldb));
    Eigen::Map<Mat, 0, Stride> c(C, M, N, Stride(ldc));
    if (add) c.noalias() += a * b;
    else c.noalias() = a * b;
  }
};

TfEnv env_of(OpKernelContext* ctx) {
  const auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  return {workers->workers, workers->num_threads};
}

float* data(Tensor& t) { return t.NumElements() ? t.flat<float>().data() : nullptr; }
const float* data(const Tensor& t) { return t.NumElements() ? t.flat<float>().data() : nullptr; }

// a (Gm, Bm, X) Gal mask as (g, b) rows: Bm = 1 repeats its one row for every b
rds::Rows<float> gal_rows(const Tensor& m) {
  if (m.dim_size(0) == 0) return {};
  const int64_t bm = m.dim_size(1), width = m.dim_size(2);
  return {data(m), bm * width, bm == 1 ? 0 : width};
}

// a (Tm, Bm, H) per-step mask as (t, b) rows: Tm = 1 repeats its rows at every step, Bm = 1 its
// one row for every b
rds::Rows<float> step_rows(const Tensor& m) {
  if (m.dim_size(0) == 0) return {};
  const int64_t bm = m.dim_size(1), width = m.dim_size(2);
  return {data(m), m.dim_size(0) == 1 ? 0 : bm * width, bm == 1 ? 0 : width};
}

std::string shape_of(const Tensor& t) { return t.shape().DebugString(); }

absl::Status shape_is(const Tensor& t, const char* name,
                      std::initializer_list<int64_t> dims) {
  bool same = t.dims() == static_cast<int>(dims.size());
  int i = 0;
  for (const int64_t d : dims) same = same && t.dim_size(i++) == d;
  if (same) return absl::OkStatus();
  std::string want = "[";
  for (const int64_t d : dims) want += (want.size() > 1 ? "," : "") + std::to_string(d);
  return tensorflow::errors::InvalidArgument(name, " must be ", want, "], not ", shape_of(t));
}

// A Gal mask: (0, ., X), or (1 or G, 1 or B, X)
absl::Status gal_mask_ok(const Tensor& m, const char* name, int64_t G, int64_t B, int64_t X) {
  if (m.dims() == 3 && m.dim_size(0) == 0) return absl::OkStatus();
  if (m.dims() == 3 && (m.dim_size(0) == 1 || m.dim_size(0) == G) &&
      (m.dim_size(1) == 1 || m.dim_size(1) == B) && m.dim_size(2) == X)
    return absl::OkStatus();
  return tensorflow::errors::InvalidArgument(name, " must be (0, ., ", X, "), (1 or ", G,
                                             ", 1 or ", B, ", ", X, "), not ", shape_of(m));
}

// A per-step mask: (0, ., H), or (1 or T, 1 or B, H)
absl::Status step_mask_ok(const Tensor& m, const char* name, int64_t T, int64_t B, int64_t H) {
  if (m.dims() == 3 && m.dim_size(0) == 0) return absl::OkStatus();
  if (m.dims() == 3 && (m.dim_size(0) == 1 || m.dim_size(0) == T) &&
      (m.dim_size(1) == 1 || m.dim_size(1) == B) && m.dim_size(2) == H)
    return absl::OkStatus();
  return tensorflow::errors::InvalidArgument(name, " must be (0, ., ", H, "), (1 or ", T,
                                             ", 1 or ", B, ", ", H, "), not ", shape_of(m));
}

// What both ops read of the layer: its sizes, from x (B, T, D) and the recurrent kernel (H, GH),
// once every input that fixes the buffers' extents is checked against them (a wrong shape
// would read or write out of bounds)
struct Layer {
  const Tensor &x, &kernel, &u, &bias_hh, &m_in, &m_rec, &cand, &uh, &uc;
  bool gru;

  absl::Status dims(rds::Dims* d) const {
    if (x.dims() != 3 || x.dim_size(1) == 0)
      return tensorflow::errors::InvalidArgument("x must be (B, T, D) with T > 0, not ",
                                                 shape_of(x));
    const int64_t G = gru ? 3 : 4;
    if (u.dims() != 2 || u.dim_size(0) == 0 || u.dim_size(1) != G * u.dim_size(0))
      return tensorflow::errors::InvalidArgument("recurrent_kernel must be (H, ", G, " H), not ",
                                                 shape_of(u));
    const int64_t B = x.dim_size(0), T = x.dim_size(1), D = x.dim_size(2), H = u.dim_size(0);
    TF_RETURN_IF_ERROR(shape_is(kernel, "kernel", {D, G * H}));
    if (bias_hh.NumElements() != 0) TF_RETURN_IF_ERROR(shape_is(bias_hh, "bias_hh", {G * H}));
    TF_RETURN_IF_ERROR(gal_mask_ok(m_in, "m_in", G, B, D));
    TF_RETURN_IF_ERROR(gal_mask_ok(m_rec, "m_rec", G, B, H));
    TF_RETURN_IF_ERROR(step_mask_ok(cand, "cand", T, B, H));
    TF_RETURN_IF_ERROR(step_mask_ok(uh, "uh", T, B, H));
    TF_RETURN_IF_ERROR(step_mask_ok(uc, "uc", T, B, H));
    if (gru && uc.dim_size(0) != 0)
      return tensorflow::errors::InvalidArgument("a GRU carries no c to zone out (uc)");
    *d = {B, T, D, H, G, m_in.dim_size(0), m_rec.dim_size(0) > 1, gru};
    return absl::OkStatus();
  }

  rds::Masks<float> masks() const {
    return {gal_rows(m_in), gal_rows(m_rec), step_rows(cand), step_rows(uh), step_rows(uc)};
  }
};

Tensor temp(OpKernelContext* ctx, std::initializer_list<int64_t> dims) {
  Tensor t;
  TensorShape shape;
  for (const int64_t d : dims) shape.AddDim(d);
  const auto status = ctx->allocate_temp(tensorflow::DT_FLOAT, shape, &t);
  if (!status.ok()) ctx->SetStatus(status);  // the caller checks ctx->status()
  return t;
}

Tensor* output(OpKernelContext* ctx, int i, std::initializer_list<int64_t> dims) {
  Tensor* t = nullptr;
  TensorShape shape;
  for (const int64_t d : dims) shape.AddDim(d);
  const auto status = ctx->allocate_output(i, shape, &t);
  if (!status.ok()) ctx->SetStatus(status);  // the caller checks ctx->status()
  return t;
}

class ForwardOp : public OpKernel {
 public:
  explicit ForwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("save", &save_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("gru", &gru_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &kernel = ctx->input(1), &u = ctx->input(2),
                 &bias = ctx->input(3), &bias_hh = ctx->input(4), &h0 = ctx->input(5),
                 &c0 = ctx->input(6);
    const Layer layer{x,  kernel, u, bias_hh, ctx->input(7), ctx->input(8), ctx->input(9),
                      ctx->input(10), ctx->input(11), gru_};
    rds::Dims d;
    OP_REQUIRES_OK(ctx, layer.dims(&d));
    OP_REQUIRES_OK(ctx, shape_is(bias, "bias", {d.GH()}));
    OP_REQUIRES_OK(ctx, shape_is(h0, "h0", {d.B, d.H}));
    OP_REQUIRES_OK(ctx, shape_is(c0, "c0", {d.B, d.H}));
    const int64_t steps = save_ ? d.T : 1;
    Tensor* out = output(ctx, 0, {d.B, d.T, d.H});
    Tensor* h_last = output(ctx, 1, {d.B, d.H});
    Tensor* c_last = output(ctx, 2, {d.B, d.H});
    Tensor* acts = output(ctx, 3, {steps, d.G, d.B, d.H});
    Tensor* aux = output(ctx, 4, {steps, d.B, d.H});
    Tensor* cs = output(ctx, 5, {d.gru ? 0 : d.T + 1, d.B, d.H});  // a GRU has no c to keep
    Tensor* hm = output(ctx, 6, {d.per_gate ? d.G : 1, d.BT(), d.H});
    Tensor* xm = output(ctx, 7, {save_ && d.Gi ? d.Gi : 0, d.BT(), d.D});
    if (!ctx->status().ok()) return;
    Tensor xm_work = save_ || !d.Gi ? Tensor() : temp(ctx, {d.Gi, d.BT(), d.D});
    Tensor pre = temp(ctx, {d.BT(), d.GH()}), rec = temp(ctx, {d.B, d.GH()});
    if (!ctx->status().ok()) return;
    const rds::Forward<float> f{
        data(x), data(kernel), data(u), data(bias), data(bias_hh), data(h0), data(c0),
        save_ ? data(*xm) : data(xm_work), data(pre), data(rec), data(*out), data(*acts),
        data(*aux), data(*cs), data(*hm), data(*h_last), data(*c_last), save_};
    TfEnv env = env_of(ctx);
    rds::forward<float>(env, d, layer.masks(), f);
  }

 private:
  bool save_ = true, gru_ = false;
};

class BackwardOp : public OpKernel {
 public:
  explicit BackwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("gru", &gru_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor &d_out = ctx->input(0), &d_h = ctx->input(1), &d_c = ctx->input(2),
                 &x = ctx->input(3), &kernel = ctx->input(4), &u = ctx->input(5),
                 &bias_hh = ctx->input(6), &h0 = ctx->input(12), &out = ctx->input(13),
                 &acts = ctx->input(14), &aux = ctx->input(15), &cs = ctx->input(16),
                 &hm = ctx->input(17), &xm = ctx->input(18);
    const Layer layer{x,  kernel, u, bias_hh, ctx->input(7), ctx->input(8), ctx->input(9),
                      ctx->input(10), ctx->input(11), gru_};
    rds::Dims d;
    OP_REQUIRES_OK(ctx, layer.dims(&d));
    const int64_t BT = d.BT(), GH = d.GH();
    // what the forward saved (save=true), and the incoming gradients
    OP_REQUIRES_OK(ctx, shape_is(acts, "acts", {d.T, d.G, d.B, d.H}));
    OP_REQUIRES_OK(ctx, shape_is(aux, "aux", {d.T, d.B, d.H}));
    OP_REQUIRES_OK(ctx, shape_is(cs, "cs", {d.gru ? 0 : d.T + 1, d.B, d.H}));
    OP_REQUIRES_OK(ctx, shape_is(hm, "hm", {d.per_gate ? d.G : 1, BT, d.H}));
    OP_REQUIRES_OK(ctx, shape_is(xm, "xm", {d.Gi, BT, d.D}));
    OP_REQUIRES_OK(ctx, shape_is(out, "out", {d.B, d.T, d.H}));
    OP_REQUIRES_OK(ctx, shape_is(h0, "h0", {d.B, d.H}));
    OP_REQUIRES_OK(ctx, shape_is(d_h, "d_h", {d.B, d.H}));
    OP_REQUIRES_OK(ctx, shape_is(d_c, "d_c", {d.B, d.H}));
    if (d_out.NumElements()) OP_REQUIRES_OK(ctx, shape_is(d_out, "d_out", {d.B, d.T, d.H}));
    Tensor* dx = output(ctx, 0, {d.B, d.T, d.D});
    Tensor* d_kernel = output(ctx, 1, {d.D, GH});
    Tensor* d_u = output(ctx, 2, {d.H, GH});
    Tensor* d_bias = output(ctx, 3, {GH});
    Tensor* d_bias_hh = output(ctx, 4, {bias_hh.NumElements() ? GH : 0});
    Tensor* dh0 = output(ctx, 5, {d.B, d.H});
    Tensor* dc0 = output(ctx, 6, {d.B, d.H});
    if (!ctx->status().ok()) return;
    // a GRU's input side differs from its recurrent side in the n gate: its own dz (and
    // transpose); an LSTM's are one
    Tensor wi = temp(ctx, {GH, d.D}), wh = temp(ctx, {GH, d.H}), dzh = temp(ctx, {BT, GH}),
           dzh_t = temp(ctx, {GH, BT}), dzx = d.gru ? temp(ctx, {BT, GH}) : dzh,
           dzx_t = d.gru ? temp(ctx, {GH, BT}) : dzh_t,
           tmp = temp(ctx, {d.per_gate ? d.G : 1, d.B, d.H}), pass = temp(ctx, {d.B, d.H}),
           dc = temp(ctx, {d.B, d.H}), dw_ih = temp(ctx, {GH, d.D}),
           dw_hh = temp(ctx, {GH, d.H});
    if (!ctx->status().ok()) return;
    TfEnv env = env_of(ctx);
    rds::transpose<float>(env, data(kernel), d.D, GH, data(wi));  // (GH, D), (GH, H): the
    rds::transpose<float>(env, data(u), d.H, GH, data(wh));       // backward GEMMs' B
    // d_out (B, T, H) as (t, b) rows; empty: the outputs had no gradient (a classifier)
    const rds::Rows<float> d_o = d_out.NumElements()
        ? rds::Rows<float>{data(d_out), d.H, d.T * d.H} : rds::Rows<float>{};
    const rds::Backward<float> b{
        d_o, data(d_h), data(d_c), data(x), data(xm), data(wi), data(wh), data(h0), data(out),
        data(acts), data(aux), data(cs), data(hm), data(dzh), data(dzx), data(dzh_t),
        data(dzx_t), data(tmp), data(pass), data(dc), data(dw_ih), data(dw_hh),
        data(*d_bias), data(*d_bias_hh), data(*dx), data(*dh0), data(*dc0)};
    rds::backward<float>(env, d, layer.masks(), b);
    rds::transpose<float>(env, data(dw_ih), GH, d.D, data(*d_kernel));  // Keras' layouts
    rds::transpose<float>(env, data(dw_hh), GH, d.H, data(*d_u));
  }

 private:
  bool gru_ = false;
};

}  // namespace

REGISTER_OP("RdsRnnLoopForward")
    .Input("x: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("bias: float")
    .Input("bias_hh: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("m_in: float")
    .Input("m_rec: float")
    .Input("cand: float")
    .Input("uh: float")
    .Input("uc: float")
    .Attr("save: bool = true")
    .Attr("gru: bool = false")
    .Output("out: float")
    .Output("h: float")
    .Output("c: float")
    .Output("acts: float")
    .Output("aux: float")
    .Output("cs: float")
    .Output("hm: float")
    .Output("xm: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      using tensorflow::shape_inference::DimensionHandle;
      DimensionHandle b = c->Dim(c->input(0), 0), t = c->Dim(c->input(0), 1),
                      h = c->Dim(c->input(2), 0);
      c->set_output(0, c->MakeShape({b, t, h}));
      c->set_output(1, c->MakeShape({b, h}));
      c->set_output(2, c->MakeShape({b, h}));
      for (int i = 3; i < 8; ++i) c->set_output(i, c->UnknownShape());
      return absl::OkStatus();
    });

REGISTER_OP("RdsRnnLoopBackward")
    .Input("d_out: float")
    .Input("d_h: float")
    .Input("d_c: float")
    .Input("x: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("bias_hh: float")
    .Input("m_in: float")
    .Input("m_rec: float")
    .Input("cand: float")
    .Input("uh: float")
    .Input("uc: float")
    .Input("h0: float")
    .Input("out: float")
    .Input("acts: float")
    .Input("aux: float")
    .Input("cs: float")
    .Input("hm: float")
    .Input("xm: float")
    .Attr("gru: bool = false")
    .Output("dx: float")
    .Output("d_kernel: float")
    .Output("d_recurrent_kernel: float")
    .Output("d_bias: float")
    .Output("d_bias_hh: float")
    .Output("dh0: float")
    .Output("dc0: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(3));
      c->set_output(1, c->input(4));
      c->set_output(2, c->input(5));
      c->set_output(3, c->Vector(c->Dim(c->input(5), 1)));
      c->set_output(4, c->input(6));
      c->set_output(5, c->input(1));
      c->set_output(6, c->input(2));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("RdsRnnLoopForward").Device(tensorflow::DEVICE_CPU), ForwardOp);
REGISTER_KERNEL_BUILDER(Name("RdsRnnLoopBackward").Device(tensorflow::DEVICE_CPU), BackwardOp);
