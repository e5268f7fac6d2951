"""The cell seam, PyTorch side: a cell is a step function over gate pre-activations, and the
per-step loop takes a cell plus per-step hooks. Plain autograd, float-exact to the equations.

Why a seam: a new cell (GRU) or a new per-step intervention (Semeniuta's candidate mask,
Zoneout's state mix) is one step function or one hook here, never another hand-written loop.
The compiled loop (fused_loop.py) is the faster path (compute.py); this loop computes every
call, and the tests hold the compiled one to it.

Layout: gate pre-activations (G, B, H) in the cell's gate order (LSTM i, f, g, o; GRU r, z, n
as PyTorch); weights in PyTorch layout w_ih (GH, D), w_hh (GH, H); masks as in the contract of
frameworks/base.py: Gal input (G, Bm, D) per gate or (Bm, D) tied, recurrent (G, Bm, H) or
(Bm, H), each applied where its side enters a matmul and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

State = tuple[Tensor, Tensor]  # (h, c), each (B, H); a GRU carries c through untouched


Slots = dict[str, Tensor | float | None]


class StepHook:
    """A per-step intervention; the defaults change nothing. `kind` names it for the choice of
    a compute path (frameworks/compute.py: which paths compute which hooks)."""

    kind = "hook"

    def core_slots(self) -> Slots | None:
        """What the compiled core (fused_loop.py) reads for this hook, by slot: `candidate` a
        (Bm, 1 or T, H) mask, `zoneout_h` / `zoneout_c` a (B, T, H) 0/1 update mask or the
        scalar expectation. None: the core does not compute this hook."""
        return None

    def candidate(self, t: int, g: Tensor) -> Tensor:
        """The candidate update (LSTM g_t after its tanh, GRU n_t) the cell uses at step t."""
        return g

    def mix(self, t: int, new: State, old: State) -> State:
        """The state carried to step t + 1, from the cell's update and the previous state."""
        return new


def _candidate(hooks: Sequence[StepHook], t: int, g: Tensor) -> Tensor:
    for hook in hooks:
        g = hook.candidate(t, g)
    return g


def lstm_step(zx: Tensor, zh: Tensor, state: State, hooks: Sequence[StepHook], t: int) -> State:
    """c = f*c + i*g, h = o*tanh(c), with g = tanh(z_g) as the hooks leave it."""
    z = zx + zh
    g = _candidate(hooks, t, torch.tanh(z[2]))
    c = torch.sigmoid(z[1]) * state[1] + torch.sigmoid(z[0]) * g
    return torch.sigmoid(z[3]) * torch.tanh(c), c


def gru_step(zx: Tensor, zh: Tensor, state: State, hooks: Sequence[StepHook], t: int) -> State:
    """PyTorch's GRU: r and z from the summed sides; the recurrent side of n (its bias included)
    sits inside the reset product; h = (1 - z) * n + z * h."""
    h = state[0]
    r = torch.sigmoid(zx[0] + zh[0])
    z = torch.sigmoid(zx[1] + zh[1])
    n = _candidate(hooks, t, torch.tanh(zx[2] + r * zh[2]))
    return (1 - z) * n + z * h, state[1]


Step = Callable[[Tensor, Tensor, State, Sequence[StepHook], int], State]
STEPS: dict[str, Step] = {"lstm": lstm_step, "gru": gru_step}


def input_part(x: Tensor, w_ih: Tensor, bias: Tensor, m_in: Tensor | None, gates: int) -> Tensor:
    """x (B, T, D) -> input pre-activations with bias, (T, G, B, H), for all steps at once."""
    b, t, d = x.shape
    hid = w_ih.shape[0] // gates
    if m_in is None or m_in.dim() == 2:
        xm = x if m_in is None else x * m_in.unsqueeze(1)
        pre = torch.addmm(bias, xm.reshape(b * t, d), w_ih.t()).view(b, t, gates, hid)
        return pre.permute(1, 2, 0, 3)
    xm = (x.unsqueeze(0) * m_in.unsqueeze(2)).reshape(gates, b * t, d)  # per-gate masks
    w4t = w_ih.view(gates, hid, d).transpose(1, 2)
    pre = torch.baddbmm(bias.view(gates, 1, hid), xm, w4t).view(gates, b, t, hid)
    return pre.permute(2, 0, 1, 3)


def recurrent_part(h: Tensor, w_hh: Tensor, bias_hh: Tensor | None, m_rec: Tensor | None,
                   gates: int) -> Tensor:
    """h_{t-1} (B, H), masked per gate or tied, times w_hh^T (+ the recurrent bias): (G, B, H)."""
    b, hid = h.shape
    if m_rec is None or m_rec.dim() == 2:
        hm = h if m_rec is None else h * m_rec
        zh = hm @ w_hh.t() if bias_hh is None else torch.addmm(bias_hh, hm, w_hh.t())
        return zh.view(b, gates, hid).transpose(0, 1)
    zh = torch.bmm(h.unsqueeze(0) * m_rec, w_hh.view(gates, hid, hid).transpose(1, 2))
    return zh if bias_hh is None else zh + bias_hh.view(gates, 1, hid)


def run(cell: str, x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
        bias_hh: Tensor | None, m_in: Tensor | None, m_rec: Tensor | None,
        hooks: Sequence[StepHook] = ()) -> tuple[Tensor, Tensor, Tensor]:
    """One layer over the sequence: (outputs (B, T, H), h_T, c_T)."""
    step, gates = STEPS[cell], w_ih.shape[0] // w_hh.shape[1]
    pre = input_part(x, w_ih, bias, m_in, gates)
    state: State = (h, c)
    outs = []
    for t in range(x.shape[1]):
        new = step(pre[t], recurrent_part(state[0], w_hh, bias_hh, m_rec, gates), state, hooks, t)
        for hook in hooks:
            new = hook.mix(t, new, state)
        state = new
        outs.append(state[0])
    return torch.stack(outs, 1), state[0], state[1]
