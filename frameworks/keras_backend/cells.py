"""The cell seam, Keras side, and the `tf.function` path's loop: a cell is a step function over
gate pre-activations, and one time loop (`run`, a `tf.while_loop` as Keras' own) takes a cell plus
per-step hooks. Every call the compiled op (native_loop.py, the same steps, reading each hook's
masks from its `core_slots`) does not compute runs here: the GRU and the LSTM, no mask or the
Gal family's, every hook.

This is the only place the Keras side writes a cell's equations (docs/ARCHITECTURE.md, "One
copy of the equations", says why the LSTM Gal family's hand-ordered loops and hand-written
backward went): what made those faster is kept here, per-gate recurrent kernels sliced once per
call and, with per-gate recurrent masks, a gate-major step ((G, B, H) blocks, no transpose per
step).

Layout: time-major, Keras kernels W = w_ih.T (D, GH), U = w_hh.T (H, GH), gate blocks along the
last axis in the cell's order (LSTM i, f, g, o; GRU r, z, n as PyTorch), pre-activations
(B, GH), or (G, B, H) in the gate-major step. Masks as in the contract of frameworks/base.py:
Gal input (G, Bm, D) per gate or (Bm, D) tied, recurrent (G, Bm, H) or (Bm, H), each applied
where its side enters a matmul and nowhere else. The input side, masks included, is one matmul
for all steps before the loop (a Gal mask is constant over time, so this equals Keras 2.0's
in-step order of implementation 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

Tensor = tf.Tensor
State = tuple[Tensor, Tensor]
Loop = tuple[Tensor, Tensor, Tensor]  # outputs (T, B, H), h_T, c_T
Slots = dict[str, Tensor | float | None]


def dims(x: Tensor) -> list[int | Tensor]:
    """Static sizes where known, dynamic otherwise: static shapes keep the gradient of a batched
    matmul free of per-step broadcast reductions."""
    dynamic = tf.shape(x)
    return [dynamic[i] if s is None else s for i, s in enumerate(x.shape)]


def per_gate(w: Tensor, gates: int) -> Tensor:
    """(X, GH) fused Keras kernel -> (G, X, H) per-gate kernels."""
    rows, gh = w.shape
    return tf.transpose(tf.reshape(w, (rows, gates, gh // gates)), (1, 0, 2))


def time_loop(step: Callable[[Sequence[Tensor], Tensor, Tensor], State], seqs: Sequence[Tensor],
              h: Tensor, c: Tensor) -> Loop:
    """Run `step` over axis 0 of `seqs` in a tf.while_loop; (outputs (T, B, H), h_T, c_T)."""
    n = tf.shape(seqs[0])[0]
    arrays = [tf.TensorArray(s.dtype, size=n).unstack(s) for s in seqs]
    out = tf.TensorArray(h.dtype, size=n)

    def body(t, h, c, out):  # noqa: ANN001, ANN202
        h, c = step([a.read(t) for a in arrays], h, c)
        return t + 1, h, c, out.write(t, h)

    _, h, c, out = tf.while_loop(lambda t, *_: t < n, body, (0, h, c, out), maximum_iterations=n)
    return out.stack(), h, c


class StepHook:
    """A per-step intervention; the defaults change nothing. `sequences` are the time-major
    tensors (T, ...) it reads per step; the loop hands it their slices at step t. `kind`
    names it for the choice of a compute path (frameworks/compute.py)."""

    kind = "hook"

    def core_slots(self) -> Slots | None:
        """What the compiled core (native_loop.py) reads for this hook, by slot, time-major:
        `candidate` a (1 or T, Bm, H) mask, `zoneout_h` / `zoneout_c` a (T, B, H) 0/1 update
        mask or the scalar expectation. None: the core does not compute this hook."""
        return None

    def sequences(self) -> list[Tensor]:
        return []

    def candidate(self, xs: Sequence[Tensor], g: Tensor) -> Tensor:
        """The candidate update (LSTM g_t after its tanh, GRU n_t) the cell uses."""
        return g

    def mix(self, xs: Sequence[Tensor], new: State, old: State) -> State:
        """The state carried on, from the cell's update and the previous state."""
        return new


Hooked = Sequence[tuple[StepHook, Sequence[Tensor]]]  # each hook with its slices at step t


def _candidate(hooks: Hooked, g: Tensor) -> Tensor:
    for hook, xs in hooks:
        g = hook.candidate(xs, g)
    return g


Blocks = Callable[[Tensor], list[Tensor]]  # pre-activations -> one tensor per gate
Step = Callable[[Tensor, Tensor, State, Hooked, Blocks], State]


def lstm_step(zx: Tensor, zh: Tensor, state: State, hooks: Hooked, blocks: Blocks) -> State:
    """c = f*c + i*g, h = o*tanh(c), with g = tanh(z_g) as the hooks leave it."""
    i, f, g, o = blocks(zx + zh)
    c = tf.sigmoid(f) * state[1] + tf.sigmoid(i) * _candidate(hooks, tf.tanh(g))
    return tf.sigmoid(o) * tf.tanh(c), c


def gru_step(zx: Tensor, zh: Tensor, state: State, hooks: Hooked, blocks: Blocks) -> State:
    """PyTorch's GRU (Keras reset_after=True): the recurrent side of n, its bias included,
    sits inside the reset product; h = (1 - z) * n + z * h."""
    (xr, xz, xn), (hr, hz, hn) = blocks(zx), blocks(zh)
    r, z = tf.sigmoid(xr + hr), tf.sigmoid(xz + hz)
    n = _candidate(hooks, tf.tanh(xn + r * hn))
    return (1 - z) * n + z * state[0], state[1]


STEPS: dict[str, Step] = {"lstm": lstm_step, "gru": gru_step}


def input_part(xs: Tensor, kernel: Tensor, bias: Tensor, in_mask: Tensor | None, gates: int,
               gate_major: bool) -> Tensor:
    """xs (T, B, D) -> input pre-activations with bias for all steps: (T, G, B, H) gate-major,
    else (T, B, GH) with the gate blocks along the last axis."""
    t, b, d = dims(xs)
    hid = kernel.shape[1] // gates
    if in_mask is None or len(in_mask.shape) == 2:
        xm = xs if in_mask is None else xs * in_mask
        xz = tf.matmul(tf.reshape(xm, (-1, d)), kernel) + bias
        if not gate_major:
            return tf.reshape(xz, [t, b, -1])
        return tf.transpose(tf.reshape(xz, [t, b, gates, hid]), (0, 2, 1, 3))
    xm = tf.reshape(xs[None] * in_mask[:, None], (gates, -1, d))  # x * m_g, every gate and step
    xz = tf.matmul(xm, per_gate(kernel, gates)) + tf.reshape(bias, (gates, 1, hid))
    xz = tf.reshape(xz, [gates, t, b, hid])
    if gate_major:
        return tf.transpose(xz, (1, 0, 2, 3))
    return tf.reshape(tf.transpose(xz, (1, 2, 0, 3)), [t, b, -1])


def recurrent_part(h: Tensor, u: Tensor, bias_hh: Tensor | None, rec_mask: Tensor | None,
                   gates: int) -> Tensor:
    """h_{t-1}, masked per gate or tied, times U (+ the recurrent bias): (G, B, H) with per-gate
    masks (`u` is then per_gate(U), (G, H, H), computed once per call, not per step), else
    (B, GH)."""
    if rec_mask is None or len(rec_mask.shape) == 2:
        zh = tf.matmul(h if rec_mask is None else h * rec_mask, u)
        return zh if bias_hh is None else zh + bias_hh
    zh = tf.matmul(tf.broadcast_to(h[None] * rec_mask, [gates, *dims(h)]), u)
    return zh if bias_hh is None else zh + tf.reshape(bias_hh, (gates, 1, -1))


def run(cell: str, xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor, u: Tensor, bias: Tensor,
        bias_hh: Tensor | None, in_mask: Tensor | None, rec_mask: Tensor | None,
        hooks: Sequence[StepHook] = ()) -> Loop:
    """One layer over xs (T, B, D): (outputs (T, B, H), h_T, c_T). With per-gate recurrent masks
    the step works gate-major, (G, B, H) blocks unstacked, with no per-step transpose."""
    step, gates = STEPS[cell], u.shape[1] // u.shape[0]
    gate_major = rec_mask is not None and len(rec_mask.shape) == 3
    if gate_major:
        u = per_gate(u, gates)  # once, before the loop

    def blocks(z: Tensor) -> list[Tensor]:
        return tf.unstack(z) if gate_major else tf.split(z, gates, axis=1)

    seqs = [input_part(xs, kernel, bias, in_mask, gates, gate_major)]
    spans = []
    for hook in hooks:
        own = hook.sequences()
        spans.append((hook, len(seqs), len(seqs) + len(own)))
        seqs += own

    def body(x: Sequence[Tensor], h: Tensor, c: Tensor) -> State:
        hooked = [(hook, x[start:end]) for hook, start, end in spans]
        zh = recurrent_part(h, u, bias_hh, rec_mask, gates)
        new = step(x[0], zh, (h, c), hooked, blocks)
        for hook, xs_t in hooked:
            new = hook.mix(xs_t, new, (h, c))
        return new

    return time_loop(body, seqs, h, c)
