"""The cell seam, Keras side: a cell is a step function over gate pre-activations, and the
per-step loop (recurrence.time_loop) takes a cell plus per-step hooks.

On the `tf.function` path the LSTM without hooks keeps the hand-ordered loops of recurrence.py
(fused, impl 0/1/2); every GRU, and every cell with a hook, runs `run` here. The compiled path
(native_loop.py) computes the same steps, reading each hook's masks from its `core_slots`.
Layout: time-major, Keras kernels W = w_ih.T (D, GH), U = w_hh.T (H, GH), gate blocks along the
last axis in the cell's order (LSTM i, f, g, o; GRU r, z, n as PyTorch), pre-activations
(B, GH). Masks as in the contract of frameworks/base.py: Gal input (G, Bm, D) per gate or
(Bm, D) tied, recurrent (G, Bm, H) or (Bm, H), each applied where its side enters a matmul and
nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from frameworks.keras_backend.recurrence import Loop, State, dims, per_gate, time_loop

Tensor = tf.Tensor
Slots = dict[str, Tensor | float | None]


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


def lstm_step(zx: Tensor, zh: Tensor, state: State, hooks: Hooked) -> State:
    """c = f*c + i*g, h = o*tanh(c), with g = tanh(z_g) as the hooks leave it."""
    i, f, g, o = tf.split(zx + zh, 4, axis=1)
    c = tf.sigmoid(f) * state[1] + tf.sigmoid(i) * _candidate(hooks, tf.tanh(g))
    return tf.sigmoid(o) * tf.tanh(c), c


def gru_step(zx: Tensor, zh: Tensor, state: State, hooks: Hooked) -> State:
    """PyTorch's GRU (Keras reset_after=True): the recurrent side of n, its bias included,
    sits inside the reset product; h = (1 - z) * n + z * h."""
    xr, xz, xn = tf.split(zx, 3, axis=1)
    hr, hz, hn = tf.split(zh, 3, axis=1)
    r, z = tf.sigmoid(xr + hr), tf.sigmoid(xz + hz)
    n = _candidate(hooks, tf.tanh(xn + r * hn))
    return (1 - z) * n + z * state[0], state[1]


Step = Callable[[Tensor, Tensor, State, Hooked], State]
STEPS: dict[str, Step] = {"lstm": lstm_step, "gru": gru_step}


def _gates_last(per_gate: Tensor) -> Tensor:
    """(G, ..., B, H) per-gate blocks -> (..., B, GH) with the gate blocks along the last axis."""
    rank = len(per_gate.shape)
    moved = tf.transpose(per_gate, [*range(1, rank - 1), 0, rank - 1])
    return tf.reshape(moved, [*dims(moved)[:-2], -1])


def input_part(xs: Tensor, kernel: Tensor, bias: Tensor, in_mask: Tensor | None,
               gates: int) -> Tensor:
    """xs (T, B, D) -> input pre-activations with bias for all steps, (T, B, GH)."""
    t, b, d = dims(xs)
    if in_mask is None or len(in_mask.shape) == 2:
        xm = xs if in_mask is None else xs * in_mask
        return tf.reshape(tf.matmul(tf.reshape(xm, (-1, d)), kernel) + bias, [t, b, -1])
    xm = tf.reshape(xs[None] * in_mask[:, None], (gates, -1, d))  # x * m_g, every gate and step
    hid = kernel.shape[1] // gates
    xz = tf.matmul(xm, per_gate(kernel, gates)) + tf.reshape(bias, (gates, 1, hid))
    return _gates_last(tf.reshape(xz, [gates, t, b, hid]))


def recurrent_part(h: Tensor, u: Tensor, bias_hh: Tensor | None, rec_mask: Tensor | None,
                   gates: int) -> Tensor:
    """h_{t-1}, masked per gate or tied, times U (+ the recurrent bias): (B, GH)."""
    if rec_mask is None or len(rec_mask.shape) == 2:
        zh = tf.matmul(h if rec_mask is None else h * rec_mask, u)
    else:
        hm = tf.broadcast_to(h[None] * rec_mask, [gates, *dims(h)])
        zh = _gates_last(tf.matmul(hm, per_gate(u, gates)))
    return zh if bias_hh is None else zh + bias_hh


def run(cell: str, xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor, u: Tensor, bias: Tensor,
        bias_hh: Tensor | None, in_mask: Tensor | None, rec_mask: Tensor | None,
        hooks: Sequence[StepHook] = ()) -> Loop:
    """One layer over xs (T, B, D): (outputs (T, B, H), h_T, c_T)."""
    step, gates = STEPS[cell], u.shape[1] // u.shape[0]
    seqs = [input_part(xs, kernel, bias, in_mask, gates)]
    spans = []
    for hook in hooks:
        own = hook.sequences()
        spans.append((hook, len(seqs), len(seqs) + len(own)))
        seqs += own

    def body(x: Sequence[Tensor], h: Tensor, c: Tensor) -> State:
        hooked = [(hook, x[start:end]) for hook, start, end in spans]
        new = step(x[0], recurrent_part(h, u, bias_hh, rec_mask, gates), (h, c), hooked)
        for hook, xs_t in hooked:
            new = hook.mix(xs_t, new, (h, c))
        return new

    return time_loop(body, seqs, h, c)
