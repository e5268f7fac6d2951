"""The LSTM Gal time loops as one autograd Function with a hand-written backward (BPTT): the
speed path of the cell seam for the LSTM cell without per-step hooks.

Why: eager autograd records ~10 nodes per time step and replays ~25 kernels per step backward,
which on CPU costs more than the matmuls at PTB sizes. Here the forward runs the per-step
computation in Keras 2.0's orders (impl 0 consumes input pre-activations that were precomputed
for all t, impl 1 and 2 do their input matmuls inside the step) and keeps what the backward
needs; the backward runs ~8 kernels per step and does every weight and input gradient as one
large matmul after the loop. cells.py is the readable autograd loop (RDS_TORCH_GAL=eager, and
every cell or hook without a hand-written backward); the tests check both against each other and
against an independent reference.

Layout inside: gates as (4, B, H) in order i, f, g, o; time-major buffers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _recurrent(h: Tensor, u4t: Tensor, w_hh: Tensor, r: Tensor | None, tied: bool) -> Tensor:
    """h_{t-1} (masked) @ U^T as (4, B, H): per-gate masks (impl 0/1) or one mask (impl 2)."""
    b, hid = h.shape
    if tied or r is None:
        hr = h if r is None else h * r
        return (hr @ w_hh.t()).view(b, 4, hid).transpose(0, 1)
    return torch.bmm(h.unsqueeze(0) * r, u4t)


def _step_input(impl: int, xt: Tensor, w: Tensor, bias: Tensor, m: Tensor | None) -> Tensor:
    """The input part of the pre-activations at one step, as (4, B, H) (impl 1 and 2)."""
    b, hid = xt.shape[0], bias.shape[0] // 4
    if impl == 1:
        xm = xt.unsqueeze(0) if m is None else xt.unsqueeze(0) * m
        w4t = w.view(4, hid, -1).transpose(1, 2)
        return torch.baddbmm(bias.view(4, 1, hid), xm.expand(4, b, xt.shape[1]), w4t)
    xm = xt if m is None else xt * m
    return torch.addmm(bias, xm, w.t()).view(b, 4, hid).transpose(0, 1)


class GalLoop(torch.autograd.Function):
    """(impl, inp, w_ih, bias, h0, c0, w_hh, m_in, m_rec) -> (out (B,T,H), h_T, c_T).

    impl 0: inp = pre-activations (T, 4, B, H) including bias, w_ih/bias/m_in unused (None).
    impl 1/2: inp = x (B, T, D); masks as in cells.py."""

    @staticmethod
    def forward(ctx: Any, impl, inp, w_ih, bias, h0, c0, w_hh, m_in, m_rec):  # noqa: ANN001
        tied = impl == 2
        t_len = inp.shape[0] if impl == 0 else inp.shape[1]
        b, hid = h0.shape
        u4t = w_hh.view(4, hid, hid).transpose(1, 2)
        hs = h0.new_empty(t_len + 1, b, hid)
        cs = h0.new_empty(t_len + 1, b, hid)
        hs[0], cs[0] = h0, c0
        grad = any(ctx.needs_input_grad)
        acts = h0.new_empty(t_len, 4, b, hid) if grad else None
        tcs = h0.new_empty(t_len, b, hid) if grad else None
        for t in range(t_len):
            rec = _recurrent(hs[t], u4t, w_hh, m_rec, tied)
            z = inp[t] + rec if impl == 0 else _step_input(impl, inp[:, t], w_ih, bias, m_in) + rec
            a = torch.sigmoid(z) if acts is None else torch.sigmoid(z, out=acts[t])
            a[2] = torch.tanh(z[2])
            torch.addcmul(a[1] * cs[t], a[0], a[2], out=cs[t + 1])
            tc = torch.tanh(cs[t + 1]) if tcs is None else torch.tanh(cs[t + 1], out=tcs[t])
            torch.mul(a[3], tc, out=hs[t + 1])
        ctx.impl = impl
        if grad:
            ctx.save_for_backward(inp, w_ih, bias, w_hh, m_in, m_rec, hs, cs, acts, tcs)
        out = hs[1:].transpose(0, 1).contiguous()
        return out, hs[t_len].clone(), cs[t_len].clone()

    @staticmethod
    def backward(ctx: Any, d_out: Tensor, d_h: Tensor, d_c: Tensor):  # noqa: ANN205
        impl = ctx.impl
        inp, w_ih, bias, w_hh, m_in, m_rec, hs, cs, acts, tcs = ctx.saved_tensors
        t_len, _, b, hid = acts.shape
        tied = impl == 2
        u4 = w_hh.view(4, hid, hid)
        d_out = d_out.transpose(0, 1)
        dh, dc = d_h.clone(), d_c.clone()
        dz_all = torch.empty_like(acts)
        # local derivatives of the activations, all steps at once: s(1-s), and 1-tanh^2 for g
        deriv = acts - acts * acts
        deriv[:, 2] = 1 - acts[:, 2] * acts[:, 2]
        # dz = [dc * g, dc * c_{t-1}, dc * i, dh * tanh(c)] * deriv
        left = torch.stack([acts[:, 2], cs[:-1], acts[:, 0], tcs], 1).mul_(deriv)
        keep_c = acts[:, 3] * (1 - tcs * tcs)  # dc_t += dh_t * o * (1 - tanh(c)^2)
        for t in range(t_len - 1, -1, -1):
            dh += d_out[t]
            dc.addcmul_(dh, keep_c[t])
            dz = dz_all[t]
            torch.mul(left[t, :3], dc, out=dz[:3])
            torch.mul(left[t, 3], dh, out=dz[3])
            dc = dc * acts[t, 1]
            if tied or m_rec is None:
                dh = dz.transpose(0, 1).reshape(b, 4 * hid) @ w_hh
                if m_rec is not None:
                    dh = dh * m_rec
            else:
                dh = (torch.bmm(dz, u4) * m_rec).sum(0)
        return (None, *_input_grads(ctx, impl, inp, w_ih, m_in, dz_all), dh, dc,
                _recurrent_weight_grad(hs[:-1], m_rec, dz_all, tied), None, None)  # fmt: skip


def _recurrent_weight_grad(h_prev: Tensor, r: Tensor | None, dz: Tensor, tied: bool) -> Tensor:
    """dU = sum_t dz_t^T (h_{t-1} * r) in one (batched) matmul; h_prev (T, B, H)."""
    t_len, _, b, hid = dz.shape
    if tied or r is None:
        hr = h_prev if r is None else h_prev * r
        dz2 = dz.permute(1, 3, 0, 2).reshape(4 * hid, t_len * b)
        return dz2 @ hr.reshape(t_len * b, hid)
    hr = (h_prev.unsqueeze(1) * r).transpose(0, 1).reshape(4, t_len * b, hid)
    dz4 = dz.permute(1, 3, 0, 2).reshape(4, hid, t_len * b)
    return torch.bmm(dz4, hr).reshape(4 * hid, hid)


def _input_grads(ctx: Any, impl: int, inp: Tensor, w: Tensor, m: Tensor | None, dz: Tensor):
    """Gradients for (inp, w_ih, bias), each None when not needed."""
    t_len, _, b, hid = dz.shape
    if impl == 0:
        return dz, None, None
    need_x, need_w, need_b = ctx.needs_input_grad[1:4]
    d = inp.shape[2]
    x_tm = inp.transpose(0, 1)  # (T, B, D)
    dx = dw = db = None
    if impl == 2:
        dz2 = dz.permute(0, 2, 1, 3).reshape(t_len * b, 4 * hid)
        xm = x_tm if m is None else x_tm * m
        if need_w:
            dw = dz2.t() @ xm.reshape(t_len * b, d)
        if need_x:
            dx = (dz2 @ w).view(t_len, b, d)
            dx = dx if m is None else dx * m
        db = dz2.sum(0) if need_b else None
    else:
        dz4 = dz.transpose(0, 1).reshape(4, t_len * b, hid)
        w4 = w.view(4, hid, d)
        if need_w:
            xm = x_tm.unsqueeze(0) if m is None else x_tm.unsqueeze(0) * m.unsqueeze(1)
            xm = xm.expand(4, t_len, b, d).reshape(4, t_len * b, d)
            dw = torch.bmm(dz4.transpose(1, 2), xm).reshape(4 * hid, d)
        if need_x:
            dx4 = torch.bmm(dz4, w4).view(4, t_len, b, d)
            dx = (dx4 if m is None else dx4 * m.unsqueeze(1)).sum(0)
        db = dz4.sum(1).reshape(4 * hid) if need_b else None
    return (dx.transpose(0, 1) if dx is not None else None), dw, db


def gal_loop(impl: int, x, h0, c0, w_ih, w_hh, bias, m_in, m_rec):  # noqa: ANN001, ANN201
    """Same result as cells.run("lstm", x, h0, c0, w_ih, w_hh, bias, None, m_in, m_rec)."""
    if impl == 0:
        b, t, d = x.shape
        hid = w_hh.shape[1]
        if m_in is None:
            pre = torch.addmm(bias, x.reshape(b * t, d), w_ih.t()).view(b, t, 4, hid)
            pre = pre.permute(1, 2, 0, 3)
        else:
            xm = (x.unsqueeze(0) * m_in.unsqueeze(2)).reshape(4, b * t, d)
            w4t = w_ih.view(4, hid, d).transpose(1, 2)
            pre = torch.baddbmm(bias.view(4, 1, hid), xm, w4t).view(4, b, t, hid)
            pre = pre.permute(2, 0, 1, 3)
        return GalLoop.apply(0, pre.contiguous(), None, None, h0, c0, w_hh, None, m_rec)
    return GalLoop.apply(impl, x, w_ih, bias, h0, c0, w_hh, m_in, m_rec)
