"""LSTM time loops, time-major, gate order i, f, g(candidate), o exactly as PyTorch: the LSTM's
speed path of the cell seam (cells.py runs every other cell, and any cell with a hook).

Keras layout: kernel W (D, 4H) = w_ih.T, recurrent kernel U (H, 4H) = w_hh.T, bias (4H,).
Each loop takes the masks as tensors (drawn outside, see `sampler.py`). Per-gate weights are
sliced once per call, before the loop: slicing a fused kernel inside the step is what makes a
naive custom Keras cell slow. The loop is a `tf.while_loop` (as Keras' own); unrolling it
(`UNROLL = True`, when T is static) measured no faster on CPU and traces much more slowly.

    fused     z_t = xz_t + h_{t-1} @ U, xz = x @ W + b precomputed for all t (cuDNN-style);
              used with no Gal mask (none, naive, locked, weight-drop with U already masked)
    impl0     xz_g = (x * m_g) @ W_g + b_g precomputed for all t per gate; (h * r_g) @ U_g per step
    impl1     (x_t * m_g) @ W_g + (h * r_g) @ U_g + b_g per gate inside the step
    impl2     xz = (x * m) @ W + b precomputed for all t, (h * r) @ U per step: one mask per side
              shared by the gates, each side one matmul fused over the gates

`run_impl0/1/2` (what layers.py calls) run these same forward computations through
gal_bptt.py's hand-written backward (one custom gradient over the whole loop, weight gradients
as one matmul after it); `autograd_impl0/1/2` are the plain loops under TensorFlow's autograd,
kept as the reference the tests hold the hand-written path to, and as the fallback
(`HAND_BPTT = False`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from frameworks.keras_backend import gal_bptt

Tensor = tf.Tensor
State = tuple[Tensor, Tensor]
Step = Callable[[Sequence[Tensor], Tensor, Tensor], State]
Loop = tuple[Tensor, Tensor, Tensor]  # outputs (T, B, H), h_T, c_T


def cell_update(i: Tensor, f: Tensor, g: Tensor, o: Tensor, c: Tensor) -> State:
    """c = f*c + i*g; h = o*tanh(c), from pre-activations."""
    c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
    return tf.sigmoid(o) * tf.tanh(c), c


UNROLL = False
HAND_BPTT = True  # run_impl0/1/2 through gal_bptt.py's hand-written backward (False: autograd)


def time_loop(step: Step, seqs: Sequence[Tensor], h: Tensor, c: Tensor) -> Loop:
    """Run `step` over axis 0 of `seqs`; returns (outputs (T, B, H), h_T, c_T)."""
    steps = seqs[0].shape[0]
    if steps is not None and UNROLL:
        outs = []
        for t in range(steps):
            h, c = step([s[t] for s in seqs], h, c)
            outs.append(h)
        return tf.stack(outs), h, c
    n = tf.shape(seqs[0])[0]
    arrays = [tf.TensorArray(s.dtype, size=n).unstack(s) for s in seqs]
    out = tf.TensorArray(h.dtype, size=n)

    def body(t, h, c, out):
        h, c = step([a.read(t) for a in arrays], h, c)
        return t + 1, h, c, out.write(t, h)

    _, h, c, out = tf.while_loop(lambda t, *_: t < n, body, (0, h, c, out), maximum_iterations=n)
    return out.stack(), h, c


def per_gate(w: Tensor, gates: int = 4) -> Tensor:
    """(X, GH) fused Keras kernel -> (G, X, H) per-gate kernels."""
    rows, gh = w.shape
    return tf.transpose(tf.reshape(w, (rows, gates, gh // gates)), (1, 0, 2))


def dims(x: Tensor) -> list[int | Tensor]:
    """Static sizes where known, dynamic otherwise: static shapes keep the gradient of a batched
    matmul free of per-step broadcast reductions."""
    dynamic = tf.shape(x)
    return [dynamic[i] if s is None else s for i, s in enumerate(x.shape)]


def run_fused(xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor, recurrent_kernel: Tensor,
              bias: Tensor) -> Loop:
    """No per-gate mask: input projection for all steps in one matmul, then h @ U per step."""
    t, b, d = dims(xs)
    xz = tf.reshape(tf.matmul(tf.reshape(xs, (-1, d)), kernel) + bias, [t, b, kernel.shape[-1]])

    def step(x, h, c):
        z = x[0] + tf.matmul(h, recurrent_kernel)
        return cell_update(*tf.split(z, 4, axis=1), c)

    return time_loop(step, [xz], h, c)


def autograd_impl0(xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor,
                   recurrent_kernel: Tensor, bias: Tensor, in_mask: Tensor | None,
                   rec_mask: Tensor | None) -> Loop:
    """Keras 2.0 implementation 0: per-gate masked input projections precomputed for all t."""
    t, b, d = dims(xs)
    hid = recurrent_kernel.shape[0]
    w4, u4 = per_gate(kernel), per_gate(recurrent_kernel)
    b4 = tf.reshape(bias, (4, 1, hid))
    if in_mask is None:
        xm = tf.broadcast_to(tf.reshape(xs, (1, -1, d)), [4, t * b, d])
    else:  # (4, T, B, D): x * m_g for every gate and step
        xm = tf.reshape(xs[None] * in_mask[:, None], (4, -1, d))
    xz = tf.matmul(xm, w4) + b4  # (4, T*B, H)
    xz = tf.transpose(tf.reshape(xz, [4, t, b, hid]), (1, 0, 2, 3))  # (T, 4, B, H)

    def step(x, h, c):
        h4 = h[None] if rec_mask is None else h[None] * rec_mask
        z = x[0] + tf.matmul(tf.broadcast_to(h4, [4, *dims(h)]), u4)
        return cell_update(*tf.unstack(z), c)

    return time_loop(step, [xz], h, c)


def autograd_impl1(xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor,
                   recurrent_kernel: Tensor, bias: Tensor, in_mask: Tensor | None,
                   rec_mask: Tensor | None) -> Loop:
    """Keras 2.0 implementation 1: per-gate masked matmuls inside the step (batched over gates)."""
    hid = recurrent_kernel.shape[0]
    w4, u4 = per_gate(kernel), per_gate(recurrent_kernel)
    b4 = tf.reshape(bias, (4, 1, hid))

    def step(x, h, c):
        x4 = x[0][None] if in_mask is None else x[0][None] * in_mask
        h4 = h[None] if rec_mask is None else h[None] * rec_mask
        x4 = tf.broadcast_to(x4, [4, *dims(x[0])])
        h4 = tf.broadcast_to(h4, [4, *dims(h)])
        z = tf.matmul(x4, w4) + tf.matmul(h4, u4) + b4
        return cell_update(*tf.unstack(z), c)

    return time_loop(step, [xs], h, c)


def autograd_impl2(xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor,
                   recurrent_kernel: Tensor, bias: Tensor, in_mask: Tensor | None,
                   rec_mask: Tensor | None) -> Loop:
    """Gal tied: one mask per side shared by all gates; one fused (h * r) @ U matmul per step.

    The input side (x_t * m) @ W + b is hoisted out of the loop, one matmul for all t: the mask
    is constant over time, so the numbers are those of Keras 2.0's in-step order, while the
    in-step order measured only 0.93-1.0x the stock no-dropout LSTM (it is the same work) and
    the hoisted one 1.1-1.2x (batch 20, T 35, hidden 200 and 650)."""
    t, b, d = dims(xs)
    xm = xs if in_mask is None else xs * in_mask
    xz = tf.reshape(tf.matmul(tf.reshape(xm, (-1, d)), kernel) + bias, [t, b, kernel.shape[-1]])

    def step(x, h, c):
        ht = h if rec_mask is None else h * rec_mask
        z = x[0] + tf.matmul(ht, recurrent_kernel)
        return cell_update(*tf.split(z, 4, axis=1), c)

    return time_loop(step, [xz], h, c)


def run_impl0(xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor, recurrent_kernel: Tensor,
              bias: Tensor, in_mask: Tensor | None, rec_mask: Tensor | None) -> Loop:
    """impl 0 (see `autograd_impl0`): the input side under autograd, the loop hand-differentiated.
    Without a recurrent mask the pre-activations go fused (T, B, 4H), as run_fused's."""
    if not HAND_BPTT:
        return autograd_impl0(xs, h, c, kernel, recurrent_kernel, bias, in_mask, rec_mask)
    t, b, d = dims(xs)
    hid = recurrent_kernel.shape[0]
    gates = rec_mask is not None  # per-gate recurrent masks need gate-major (4, T, B, H)
    if in_mask is None:
        xz = tf.reshape(tf.matmul(tf.reshape(xs, (-1, d)), kernel) + bias, [t, b, 4, hid])
        xz = tf.transpose(xz, (2, 0, 1, 3)) if gates else tf.reshape(xz, [t, b, 4 * hid])
    else:
        xm = tf.reshape(xs[None] * in_mask[:, None], (4, -1, d))
        b4 = tf.reshape(bias, (4, 1, hid))
        xz = tf.reshape(tf.matmul(xm, per_gate(kernel)), [4, t, b, hid])  # bias: below
        if gates:  # the loop adds b4 to each step's slice: one pass over xz fewer
            return gal_bptt.loop_pre(xz, h, c, recurrent_kernel, rec_mask, b4)
        xz = tf.reshape(tf.transpose(xz + b4[:, None], (1, 2, 0, 3)), [t, b, 4 * hid])
    return gal_bptt.loop_pre(xz, h, c, recurrent_kernel, rec_mask)


def run_impl1(xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor, recurrent_kernel: Tensor,
              bias: Tensor, in_mask: Tensor | None, rec_mask: Tensor | None) -> Loop:
    """impl 1 (see `autograd_impl1`): both per-gate matmuls inside the step, hand-differentiated
    (the input gradients after the loop)."""
    if not HAND_BPTT:
        return autograd_impl1(xs, h, c, kernel, recurrent_kernel, bias, in_mask, rec_mask)
    return gal_bptt.loop_impl1(xs, h, c, kernel, recurrent_kernel, bias, in_mask, rec_mask)


def run_impl2(xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor, recurrent_kernel: Tensor,
              bias: Tensor, in_mask: Tensor | None, rec_mask: Tensor | None) -> Loop:
    """impl 2 (see `autograd_impl2`): the hoisted input side under autograd, the loop
    hand-differentiated."""
    if not HAND_BPTT:
        return autograd_impl2(xs, h, c, kernel, recurrent_kernel, bias, in_mask, rec_mask)
    t, b, d = dims(xs)
    xm = xs if in_mask is None else xs * in_mask
    xz = tf.reshape(tf.matmul(tf.reshape(xm, (-1, d)), kernel) + bias, [t, b, kernel.shape[-1]])
    return gal_bptt.loop_pre(xz, h, c, recurrent_kernel, rec_mask)
