"""Gal-style variational LSTM layers (the Keras family) as explicit time loops, plain autograd.

The readable version: selected by RDS_TORCH_GAL=eager and what RDS_TORCH_COMPILE=1 compiles. The
default training path is gal_bptt.py (same forward, hand-written backward); the tests check both.

Masks are constant over time and per sample (Bm = B) or per minibatch (Bm = 1); recurrent masks
touch only the h_{t-1} entering the recurrent matmul, never c_t or the output h_t. All three
implementations compute the same function given the same masks; they differ in computation
order (and so in cost), which is part of what the suite measures:

- impl 0: per-gate input projections x_t*m_g @ W_g + b_g precomputed for all t before the loop.
- impl 1: per-gate input and recurrent matmuls inside the step (one batched matmul over gates).
- impl 2: one mask shared by all gates, one fused [x_t*m, h*r] @ [W; U]^T matmul per step.

Shapes: x (B, T, D); h0, c0 (B, H); weights in PyTorch layout w_ih (4H, D), w_hh (4H, H),
bias (4H,) = b_ih + b_hh; masks impl 0/1 (4, Bm, D) / (4, Bm, H), impl 2 (Bm, D) / (Bm, H).
Returns out (B, T, H), h_T, c_T.
"""

from __future__ import annotations

import torch
from torch import Tensor

LoopResult = tuple[Tensor, Tensor, Tensor]


def _cell(gates: Tensor, c: Tensor, gate_dim: int) -> tuple[Tensor, Tensor]:
    """LSTM update from pre-activations laid out with the 4 gates (i, f, g, o) along gate_dim."""
    i, f, g, o = gates.unbind(gate_dim) if gate_dim == 0 else gates.chunk(4, gate_dim)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def impl0(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    bias: Tensor,
    m_in: Tensor | None,
    m_rec: Tensor | None,
) -> LoopResult:
    """Keras 2.0 implementation 0: input side precomputed per gate for all time steps."""
    b, t, d = x.shape
    hid = w_hh.shape[1]
    w4 = w_ih.view(4, hid, d)
    if m_in is None:
        pre = torch.addmm(bias, x.reshape(b * t, d), w_ih.t()).view(b, t, 4, hid)
        pre = pre.permute(1, 2, 0, 3)
    else:
        xm = x.unsqueeze(0) * m_in.unsqueeze(2)  # (4, B, T, D)
        pre = torch.baddbmm(bias.view(4, 1, hid), xm.reshape(4, b * t, d), w4.transpose(1, 2))
        pre = pre.view(4, b, t, hid).permute(2, 0, 1, 3)
    pre = pre.contiguous()  # (T, 4, B, H)
    u4t = w_hh.view(4, hid, hid).transpose(1, 2)
    outs = []
    for step in range(t):
        if m_rec is None:
            rec = (h @ w_hh.t()).view(b, 4, hid).transpose(0, 1)
        else:
            rec = torch.bmm(h.unsqueeze(0) * m_rec, u4t)
        h, c = _cell(pre[step] + rec, c, 0)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def impl1(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    bias: Tensor,
    m_in: Tensor | None,
    m_rec: Tensor | None,
) -> LoopResult:
    """Keras 2.0 implementation 1: per-gate masked matmuls inside the step."""
    b, t, d = x.shape
    hid = w_hh.shape[1]
    # [W_g; U_g]^T per gate: (4, D + H, H), so each gate costs one batched matmul per step.
    wu = torch.cat([w_ih.view(4, hid, d), w_hh.view(4, hid, hid)], 2).transpose(1, 2)
    b4 = bias.view(4, 1, hid)
    outs = []
    for step in range(t):
        xt = x[:, step].unsqueeze(0)
        xt = xt.expand(4, b, d) if m_in is None else xt * m_in
        ht = h.unsqueeze(0)
        ht = ht.expand(4, b, hid) if m_rec is None else ht * m_rec
        gates = torch.baddbmm(b4, torch.cat([xt, ht], 2), wu)
        h, c = _cell(gates, c, 0)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def impl2(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    bias: Tensor,
    m_in: Tensor | None,
    m_rec: Tensor | None,
) -> LoopResult:
    """Gal tied: one input and one recurrent mask for all gates, one fused matmul per step."""
    t = x.shape[1]
    wu = torch.cat([w_ih, w_hh], 1).t()  # (D + H, 4H)
    outs = []
    for step in range(t):
        xt = x[:, step]
        if m_in is not None:
            xt = xt * m_in
        ht = h if m_rec is None else h * m_rec
        gates = torch.addmm(bias, torch.cat([xt, ht], 1), wu)
        h, c = _cell(gates, c, 1)
        outs.append(h)
    return torch.stack(outs, 1), h, c


IMPLS = {0: impl0, 1: impl1, 2: impl2}
