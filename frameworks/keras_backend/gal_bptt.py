"""The LSTM Gal time loops (recurrence.py's impl 0/1/2) with a hand-written backward: one
`tf.custom_gradient` over the whole `tf.while_loop`.

Why: differentiating a `tf.while_loop` makes TensorFlow accumulate the weight gradients inside
the reverse loop (dU += (h_{t-1} * r_g)^T dz_g per step and gate block, and dW for impl 1), push
every intermediate it needs through per-step stacks and feed zeros through the loop for outputs
nobody reads. Here the forward is the same per-step computation as the autograd loops and keeps
only h_t, c_{t-1}, tanh(c_t), sigmoid(z_t) and tanh(g_t), in TensorArrays handed as they are to
the reverse loop; that loop carries (dh, dc), does one matmul per step, dz_t -> dh_{t-1}, and
skips the outputs' gradient when TensorFlow filled it with zeros (a classifier reads h_T only);
the weight (and impl 1's input) gradients are one (per-gate batched) matmul over all T*B rows
after it. Outputs and gradients equal autograd's within float rounding
(tests/test_keras_gal_bptt.py): only the order of the sums over time differs.

Measured (CPU time of a full training step, 1 thread, paired and interleaved with autograd
through the same loops, geometric mean [95% t-interval]): classifier (batch 64, T 50, hidden
128, 15 rounds) impl0 1.07x [1.02, 1.12], impl1 1.05x [0.99, 1.11], impl2 1.10x [1.01, 1.21];
PTB (batch 20, T 35, hidden 200, 2 layers, 11 rounds) impl0 1.04x [0.98, 1.11], impl1 1.08x
[1.01, 1.16], impl2 1.04x [0.97, 1.12]. Measured slower and dropped: precomputing the local
derivatives for all steps before the reverse loop (whole-sequence tensors cost more memory
traffic than the per-step ops they save), stacking the gate activations per step, stacking the
saved arrays and unstacking them again, and (impl 1) accumulating dW and dx inside the reverse
loop (0.94x [0.88, 0.99] of doing them after it). What still separates impl 0/1 from the stock
LSTM at the classifier shape is the per-gate matmuls themselves: (4, M, 128) x (4, 128, 128)
batches run slower than one (M, 128) x (128, 512) matmul, and impl 0's masked input copy
(4, T, B, D) is inherent to its order.

Layouts: `gates` keeps the per-step pre-activations as (4, B, H) (per-gate recurrent masks, or
impl 1's per-gate input matmuls); `fused` as (B, 4H) in Keras' kernel order (tied masks, or no
recurrent mask). Gate order i, f, g, o. Masks are closed over, not differentiated (they are
drawn, not learned).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

Tensor = tf.Tensor
Loop = tuple[Tensor, Tensor, Tensor]  # outputs (T, B, H), h_T, c_T


def _gates(w: Tensor) -> Tensor:
    """(X, 4H) fused Keras kernel -> (4, X, H) per-gate kernels."""
    rows, gh = w.shape
    return tf.transpose(tf.reshape(w, (rows, 4, gh // 4)), (1, 0, 2))


def _fused(w4: Tensor) -> Tensor:
    """(4, X, H) per-gate kernels -> (X, 4H): the inverse of `_gates`."""
    gates, rows, hid = w4.shape
    return tf.reshape(tf.transpose(w4, (1, 0, 2)), (rows, gates * hid))


class _Layout:
    """Where the gate axis of the per-step pre-activations is: axis 0 of (4, B, H) (`gates`) or
    the blocks of the last axis of (B, 4H) (`fused`)."""

    def __init__(self, gates: bool):
        self.gates = gates

    def split(self, z: Tensor) -> list[Tensor]:
        return tf.unstack(z) if self.gates else tf.split(z, 4, axis=-1)

    def join(self, parts: list[Tensor]) -> Tensor:
        return tf.stack(parts) if self.gates else tf.concat(parts, axis=-1)


# TensorArrays of the forward loop, per step: h, c_{t-1}, tanh c, sigmoid z, tanh g. Handed to
# the reverse loop as they are: stacking them and unstacking them again costs two copies each.
Saved = tuple[tf.TensorArray, ...]


def _run(layout: _Layout, pre: Callable[[Tensor, Tensor], Tensor], n: Tensor, h0: Tensor,
         c0: Tensor) -> tuple[Saved, Tensor, Tensor]:
    """Forward loop: z_t = pre(t, h_{t-1}). Returns what the reverse loop reads, per step:
    h_t, c_{t-1}, tanh(c_t), sigmoid(z_t) of all four gates (the g block unused) and tanh(g_t);
    then h_T, c_T. Saving the whole sigmoid(z_t) costs one sigmoid over the g block and spares a
    per-step stack of the gate activations."""
    arrays = [tf.TensorArray(h0.dtype, size=n) for _ in range(5)]

    def body(t, h, c, *arrays):
        z = pre(t, h)
        sig = tf.sigmoid(z)
        i, f, _, o = layout.split(sig)
        g = tf.tanh(layout.split(z)[2])
        new_c = f * c + i * g  # the ops of recurrence.cell_update, in its order
        tc = tf.tanh(new_c)
        h = o * tc
        saved = (h, c, tc, sig, g)
        return (t + 1, h, new_c, *(a.write(t, v) for a, v in zip(arrays, saved, strict=True)))

    _, h, c, *arrays = tf.while_loop(
        lambda t, *_: t < n, body, (0, h0, c0, *arrays), maximum_iterations=n)
    return tuple(arrays), h, c


def _reverse(layout: _Layout, back: Callable[[Tensor], Tensor], saved: Saved,
             d_out: Tensor | None, d_h: Tensor, d_c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Reverse loop: dz_t for every step (T, layout) and the gradients w.r.t. h_0 and c_0;
    d_out None when no output but the final state has a gradient (a classifier).
    `back(dz_t)` is dL/dh_{t-1} through the recurrent matmul (mask included). All per-step work
    stays on (B, H)-sized tensors, which sit in cache: measured, precomputing the local
    derivatives for all steps at once cost more (memory traffic) than it saved in op overhead.
    SigmoidGrad(y, dy) = dy y (1 - y) and TanhGrad(y, dy) = dy (1 - y^2) are single kernels."""
    sig_grad, tanh_grad = tf.raw_ops.SigmoidGrad, tf.raw_ops.TanhGrad
    n = saved[0].size()
    d_out_ta = None if d_out is None else tf.TensorArray(d_h.dtype, size=n).unstack(d_out)
    dz_ta = tf.TensorArray(d_h.dtype, size=n)

    def body(t, dh, dc, dz_ta):
        cp, tc, sig, g = (s.read(t) for s in saved[1:])
        i, f, _, o = layout.split(sig)
        dh = dh if d_out_ta is None else dh + d_out_ta.read(t)
        dc = dc + tanh_grad(y=tc, dy=dh * o)
        dz = layout.join([sig_grad(y=i, dy=dc * g), sig_grad(y=f, dy=dc * cp),
                          tanh_grad(y=g, dy=dc * i), sig_grad(y=o, dy=dh * tc)])
        return t - 1, back(dz), dc * f, dz_ta.write(t, dz)

    _, dh, dc, dz_ta = tf.while_loop(lambda t, *_: t >= 0, body, (n - 1, d_h, d_c, dz_ta),
                                     maximum_iterations=n)
    return dz_ta.stack(), dh, dc


def _zeros_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return tf.zeros_like(like) if grad is None else grad


def _none_if_zeros(grad: Tensor | None) -> Tensor | None:
    """None for an upstream gradient TensorFlow filled with zeros because that output is not
    used (the classifier reads h_T only): the reverse loop then skips reading it per step."""
    if grad is None or (hasattr(grad, "op") and grad.op.type == "ZerosLike"):
        return None
    return grad


def _rows(x: Tensor) -> Tensor:
    """(T, B, X) or (G, T, B, X) -> (T*B, X) or (G, T*B, X)."""
    return tf.reshape(x, [*([x.shape[0]] if len(x.shape) == 4 else []), -1, x.shape[-1]])


def _recurrent_fns(layout: _Layout, u: Tensor, r: Tensor | None):
    """(forward h -> recurrent pre-activations, backward dz -> dh_{t-1}, (h_prev, dz_all) ->
    dU) for U (H, 4H) and a recurrent mask r: (4, Bm, H) per gate, (Bm, H) tied, or None.
    dz_all is (T, B, 4H) in the fused layout and gate-major (4, T, B, H) in the gates one."""
    if not layout.gates:
        def fwd(h: Tensor) -> Tensor:
            return tf.matmul(h if r is None else h * r, u)

        def back(dz: Tensor) -> Tensor:
            dh = tf.matmul(dz, u, transpose_b=True)
            return dh if r is None else dh * r

        def weight(h_prev: Tensor, dz: Tensor) -> Tensor:
            hm = h_prev if r is None else h_prev * r
            return tf.matmul(_rows(hm), _rows(dz), transpose_a=True)

        return fwd, back, weight
    u4 = _gates(u)

    def fwd_g(h: Tensor) -> Tensor:
        h4 = tf.broadcast_to(h[None], [4, *_dims(h)]) if r is None else h * r  # (4, B, H)
        return tf.matmul(h4, u4)

    def back_g(dz: Tensor) -> Tensor:
        dh4 = tf.matmul(dz, u4, transpose_b=True)
        return tf.reduce_sum(dh4 if r is None else dh4 * r, 0)

    def weight_g(h_prev: Tensor, dz: Tensor) -> Tensor:  # dz gate-major (4, T, B, H)
        dz4 = _rows(dz)
        if r is None:
            return _fused(tf.matmul(_rows(h_prev)[None], dz4, transpose_a=True))
        hm4 = _rows(h_prev[None] * r[:, None])
        return _fused(tf.matmul(hm4, dz4, transpose_a=True))

    return fwd_g, back_g, weight_g


def _dims(x: Tensor) -> list[int | Tensor]:
    dynamic = tf.shape(x)
    return [dynamic[i] if s is None else s for i, s in enumerate(x.shape)]


def _prev(first: Tensor, seq: Tensor) -> Tensor:
    """[first, seq_0, ..., seq_{T-2}]: the value entering each step."""
    return tf.concat([first[None], seq[:-1]], 0)


def loop_pre(pre: Tensor, h0: Tensor, c0: Tensor, u: Tensor, rec_mask: Tensor | None,
             bias: Tensor | None = None) -> Loop:
    """LSTM over input pre-activations precomputed for all steps: pre is gate-major
    (4, T, B, H) per gate (impl 0) or (T, B, 4H) fused (impl 2); rec_mask (4, Bm, H) needs the
    per-gate one, (Bm, H) or None either. `bias` (the layout of one step: (4, 1, H) or (4H,)),
    when given, is added to pre's slice at each step, (pre_t + b) + recurrent: the order of
    adding it to all of pre first, without a pass over all of it (within rounding: oneDNN may
    fuse a bias add into the matmul before it). Same function as recurrence.py's autograd
    loops. Step t reads its slice with a gather (a copy of one step, in cache) instead of a
    TensorArray, which would copy all of pre once more; gate-major spares impl 0 a transpose of
    its pre-activations (its gradient gets the one transpose of dz the weight gradient needs)."""
    layout = _Layout(gates=len(pre.shape) == 4)
    if layout.gates and rec_mask is not None and len(rec_mask.shape) != 3:
        raise ValueError("a per-gate (4, T, B, H) input needs a per-gate (4, Bm, H) mask")
    time_axis = 1 if layout.gates else 0
    sum_axes = (1, 2) if layout.gates else (0, 1)  # dz -> the bias' shape, gate-major or not

    @tf.custom_gradient
    def run(pre: Tensor, h0: Tensor, c0: Tensor, u: Tensor, bias: Tensor):
        fwd, back, weight = _recurrent_fns(layout, u, rec_mask)
        n = tf.shape(pre)[time_axis]

        def step_pre(t: Tensor, h: Tensor) -> Tensor:
            x = tf.gather(pre, t, axis=time_axis)
            return (x if no_bias else x + bias) + fwd(h)

        saved, h, c = _run(layout, step_pre, n, h0, c0)
        hs = saved[0].stack()

        def grad(d_out: Tensor | None, d_h: Tensor | None, d_c: Tensor | None):
            dz, dh0, dc0 = _reverse(layout, back, saved, _none_if_zeros(d_out),
                                    _zeros_if_none(d_h, h), _zeros_if_none(d_c, c))
            if layout.gates:
                dz = tf.transpose(dz, (1, 0, 2, 3))
            db = (tf.zeros_like(bias) if no_bias
                  else tf.reshape(tf.reduce_sum(dz, sum_axes), tf.shape(bias)))
            return dz, dh0, dc0, weight(_prev(h0, hs), dz), db

        return (hs, h, c), grad

    no_bias = bias is None  # then a scalar placeholder, never added
    return run(pre, h0, c0, u, tf.zeros((), pre.dtype) if no_bias else bias)


def loop_impl1(xs: Tensor, h0: Tensor, c0: Tensor, kernel: Tensor, u: Tensor, bias: Tensor,
               in_mask: Tensor | None, rec_mask: Tensor | None) -> Loop:
    """Keras 2.0 implementation 1: z_t = (x_t * m_g) W_g + (h_{t-1} * r_g) U_g + b_g with both
    per-gate matmuls inside the step, in that order (the autograd loop's numbers); the input
    gradients (x, W, b) are computed after the reverse loop from all dz at once."""
    if in_mask is not None and len(in_mask.shape) != 3:
        raise ValueError("impl 1 takes per-gate (4, Bm, D) input masks")
    layout = _Layout(gates=True)

    @tf.custom_gradient
    def run(xs: Tensor, h0: Tensor, c0: Tensor, kernel: Tensor, u: Tensor, bias: Tensor):
        fwd, back, weight = _recurrent_fns(layout, u, rec_mask)
        w4, b4 = _gates(kernel), tf.reshape(bias, (4, 1, -1))

        def pre(t: Tensor, h: Tensor) -> Tensor:
            x = tf.gather(xs, t)
            x4 = tf.broadcast_to(x[None] if in_mask is None else x[None] * in_mask,
                                 [4, *_dims(x)])
            return tf.matmul(x4, w4) + fwd(h) + b4

        saved, h, c = _run(layout, pre, tf.shape(xs)[0], h0, c0)
        hs = saved[0].stack()

        def grad(d_out: Tensor | None, d_h: Tensor | None, d_c: Tensor | None):
            dz, dh0, dc0 = _reverse(layout, back, saved, _none_if_zeros(d_out),
                                    _zeros_if_none(d_h, h), _zeros_if_none(d_c, c))
            dz4 = tf.transpose(dz, (1, 0, 2, 3))  # (4, T, B, H)
            dx4 = tf.reshape(tf.matmul(_rows(dz4), w4, transpose_b=True), [4, *_dims(xs)])
            dxs = tf.reduce_sum(dx4 if in_mask is None else dx4 * in_mask[:, None], 0)
            xm = xs[None] if in_mask is None else xs[None] * in_mask[:, None]
            xm4 = _rows(tf.broadcast_to(xm, [4, *_dims(xs)]))
            dw = _fused(tf.matmul(xm4, _rows(dz4), transpose_a=True))
            db = tf.reshape(tf.reduce_sum(dz4, (1, 2)), (-1,))
            return dxs, dh0, dc0, dw, weight(_prev(h0, hs), dz4), db

        return (hs, h, c), grad

    return run(xs, h0, c0, kernel, u, bias)
