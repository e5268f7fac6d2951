// TensorFlow's binding of the compiled time loop (frameworks/csrc/rnn_loop.h): the speed path
// of the Keras LSTM Gal family (frameworks/keras_backend/native_loop.py). Two ops, the forward
// and its hand-written backward, float32 on CPU; each GEMM tile is an Eigen product on one
// thread, the tiles and the per-step row passes spread over the op's intra-op thread pool.
//
// Why: TensorFlow runs a tf.while_loop step as a dozen small ops (Keras' stock LSTM as well);
// at the classifier shape (B 64, T 50, H 128) their per-op cost is most of a step. Here one op
// runs the whole forward and one the whole backward, the input side included.
//
// Keras layout: x (B, T, D) batch-major, kernel (D, 4H), recurrent kernel (H, 4H), bias (4H),
// gate order i, f, g, o (PyTorch's, as the suite's Keras loops); masks (Gm, Bm, X) with Gm 0
// (none), 1 (tied) or 4 (per gate) and Bm 1 (one per batch) or B (per sample).

#include <Eigen/Core>

#include <algorithm>
#include <functional>

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

// a (Gm, Bm, X) mask as (g, b) rows: Bm = 1 repeats its one row for every b
rds::Rows<float> rows_of(const Tensor& m) {
  if (m.dim_size(0) == 0) return {};
  const int64_t bm = m.dim_size(1), width = m.dim_size(2);
  return {m.flat<float>().data(), bm * width, bm == 1 ? 0 : width};
}

float* data(Tensor& t) { return t.NumElements() ? t.flat<float>().data() : nullptr; }
const float* data(const Tensor& t) { return t.NumElements() ? t.flat<float>().data() : nullptr; }

rds::Dims dims_of(const Tensor& x, const Tensor& u, const Tensor& m_in, const Tensor& m_rec) {
  const int64_t H = u.dim_size(0);
  return {x.dim_size(0), x.dim_size(1), x.dim_size(2), H, 4, m_in.dim_size(0),
          m_rec.dim_size(0) > 1, false};
}

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
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor &x = ctx->input(0), &kernel = ctx->input(1), &u = ctx->input(2),
                 &bias = ctx->input(3), &h0 = ctx->input(4), &c0 = ctx->input(5),
                 &m_in = ctx->input(6), &m_rec = ctx->input(7);
    const rds::Dims d = dims_of(x, u, m_in, m_rec);
    OP_REQUIRES(ctx, d.T > 0, tensorflow::errors::InvalidArgument("no time steps"));
    const int64_t steps = save_ ? d.T : 1;
    Tensor* out = output(ctx, 0, {d.B, d.T, d.H});
    Tensor* h_last = output(ctx, 1, {d.B, d.H});
    Tensor* c_last = output(ctx, 2, {d.B, d.H});
    Tensor* acts = output(ctx, 3, {steps, d.G, d.B, d.H});
    Tensor* aux = output(ctx, 4, {steps, d.B, d.H});
    Tensor* cs = output(ctx, 5, {d.T + 1, d.B, d.H});
    Tensor* hm = output(ctx, 6, {d.per_gate ? d.G : 1, d.BT(), d.H});
    Tensor* xm = output(ctx, 7, {save_ && d.Gi ? d.Gi : 0, d.BT(), d.D});
    if (!ctx->status().ok()) return;
    Tensor xm_work = save_ || !d.Gi ? Tensor() : temp(ctx, {d.Gi, d.BT(), d.D});
    Tensor pre = temp(ctx, {d.BT(), d.GH()}), rec = temp(ctx, {d.B, d.GH()});
    if (!ctx->status().ok()) return;
    const rds::Forward<float> f{
        data(x), data(kernel), data(u), data(bias), nullptr, data(h0), data(c0),
        save_ ? data(*xm) : data(xm_work), data(pre), data(rec), data(*out), data(*acts),
        data(*aux), data(*cs), data(*hm), data(*h_last), data(*c_last), save_};
    TfEnv env = env_of(ctx);
    rds::forward<float>(env, d, {rows_of(m_in), rows_of(m_rec), {}, {}, {}}, f);
  }

 private:
  bool save_ = true;
};

class BackwardOp : public OpKernel {
 public:
  explicit BackwardOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor &d_out = ctx->input(0), &d_h = ctx->input(1), &d_c = ctx->input(2),
                 &x = ctx->input(3), &kernel = ctx->input(4), &u = ctx->input(5),
                 &m_in = ctx->input(6), &m_rec = ctx->input(7), &h0 = ctx->input(8),
                 &out = ctx->input(9), &acts = ctx->input(10), &aux = ctx->input(11),
                 &cs = ctx->input(12), &hm = ctx->input(13), &xm = ctx->input(14);
    const rds::Dims d = dims_of(x, u, m_in, m_rec);
    const int64_t BT = d.BT(), GH = d.GH();
    Tensor* dx = output(ctx, 0, {d.B, d.T, d.D});
    Tensor* d_kernel = output(ctx, 1, {d.D, GH});
    Tensor* d_u = output(ctx, 2, {d.H, GH});
    Tensor* d_bias = output(ctx, 3, {GH});
    Tensor* dh0 = output(ctx, 4, {d.B, d.H});
    Tensor* dc0 = output(ctx, 5, {d.B, d.H});
    if (!ctx->status().ok()) return;
    Tensor wi = temp(ctx, {GH, d.D}), wh = temp(ctx, {GH, d.H}), dzh = temp(ctx, {BT, GH}),
           dzh_t = temp(ctx, {GH, BT}), tmp = temp(ctx, {d.per_gate ? d.G : 1, d.B, d.H}),
           pass = temp(ctx, {d.B, d.H}), dc = temp(ctx, {d.B, d.H}),
           dw_ih = temp(ctx, {GH, d.D}),
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
        data(acts), data(aux), data(cs), data(hm), data(dzh), data(dzh), data(dzh_t),
        data(dzh_t), data(tmp), data(pass), data(dc), data(dw_ih), data(dw_hh),
        data(*d_bias), nullptr, data(*dx), data(*dh0), data(*dc0)};
    rds::backward<float>(env, d, {rows_of(m_in), rows_of(m_rec), {}, {}, {}}, b);
    rds::transpose<float>(env, data(dw_ih), GH, d.D, data(*d_kernel));  // Keras' layouts
    rds::transpose<float>(env, data(dw_hh), GH, d.H, data(*d_u));
  }
};

}  // namespace

REGISTER_OP("RdsGalLstmForward")
    .Input("x: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("bias: float")
    .Input("h0: float")
    .Input("c0: float")
    .Input("m_in: float")
    .Input("m_rec: float")
    .Attr("save: bool = true")
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

REGISTER_OP("RdsGalLstmBackward")
    .Input("d_out: float")
    .Input("d_h: float")
    .Input("d_c: float")
    .Input("x: float")
    .Input("kernel: float")
    .Input("recurrent_kernel: float")
    .Input("m_in: float")
    .Input("m_rec: float")
    .Input("h0: float")
    .Input("out: float")
    .Input("acts: float")
    .Input("aux: float")
    .Input("cs: float")
    .Input("hm: float")
    .Input("xm: float")
    .Output("dx: float")
    .Output("d_kernel: float")
    .Output("d_recurrent_kernel: float")
    .Output("d_bias: float")
    .Output("dh0: float")
    .Output("dc0: float")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(3));
      c->set_output(1, c->input(4));
      c->set_output(2, c->input(5));
      c->set_output(3, c->Vector(c->Dim(c->input(5), 1)));
      c->set_output(4, c->input(1));
      c->set_output(5, c->input(2));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("RdsGalLstmForward").Device(tensorflow::DEVICE_CPU), ForwardOp);
REGISTER_KERNEL_BUILDER(Name("RdsGalLstmBackward").Device(tensorflow::DEVICE_CPU), BackwardOp);
