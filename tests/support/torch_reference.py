"""An independent reference for the PyTorch backend tests; the checks that make it trustworthy
are in tests/frameworks/torch_backend/test_reference.py.

`ref_forward` is a plain-torch, float64, step-by-step, gate-by-gate model (LSTM or GRU cell)
written straight from docs/SEMANTICS.md, the papers it cites and the contract in
frameworks/base.py (weights by their numpy names, masks by their contract names). It shares no
code with frameworks/torch_backend. Its own tests pin it to torch.nn.LSTM / torch.nn.GRU without
masks and to hand-unrolled algebra with masks (Gal, WeightDrop, Semeniuta, zoneout).

It reads the spec only through attributes (`variant.value`, `cell`, rates, sizes), so it also
accepts a plain stand-in object with those fields.
"""

from __future__ import annotations

import numpy as np
import torch

from frameworks.spec import TaskKind

UNTIED = {"keras_impl0", "keras_impl1"}
GAL = UNTIED | {"keras_impl2"}
GATES = {"lstm": 4, "gru": 3}


def as_params(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """float64 leaf tensors (requiring grad) from a numpy weight dict."""
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}


def as_masks(names: list[str], drawn: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """The last mask drawn under each name, as float64 tensors."""
    return {n: torch.tensor(m, dtype=torch.float64) for n, m in zip(names, drawn, strict=True)}


def cell_of(spec) -> str:
    """`lstm` or `gru` (specs made before the cell field existed are LSTMs)."""
    return str(getattr(getattr(spec, "cell", "lstm"), "value", getattr(spec, "cell", "lstm")))


def rate_of(spec, name: str) -> float:
    return float(getattr(spec, f"{name}_dropout", 0.0))


def _gate_mask(mask: torch.Tensor | None, g: int, untied: bool) -> torch.Tensor | float:
    if mask is None:
        return 1.0
    return mask[g] if untied else mask


def _at(value, t: int):
    """Step t of a per-step tensor (B, T, H), of a per-sequence one (Bm, 1, H) (the same at
    every step), or a scalar / None as is."""
    if isinstance(value, torch.Tensor) and value.dim() == 3:
        return value[:, t] if value.shape[1] > 1 else value[:, 0]
    return value


def ref_layer(x, h, c, w_ih, w_hh, bias, in_mask=None, rec_mask=None, untied=False,
              cand_mask=None, u_c=None, u_h=None):
    """One LSTM layer, one time step and one gate at a time. Gates i, f, g, o in row blocks.

    cand_mask (Semeniuta): multiplies g = tanh(candidate pre-activation) in the cell update.
    u_c, u_h (zoneout): 1 takes the new value, 0 keeps the previous one; (B, T, H) or a scalar.
    The new h is computed from the new, un-zoned cell (Krueger et al. 2017)."""
    hid = h.shape[-1]
    outs = []
    for t in range(x.shape[1]):
        z = []
        for g in range(4):
            rows = slice(g * hid, (g + 1) * hid)
            xg = x[:, t] * _gate_mask(in_mask, g, untied)
            hg = h * _gate_mask(rec_mask, g, untied)
            z.append(xg @ w_ih[rows].T + hg @ w_hh[rows].T + bias[rows])
        i, f, o = torch.sigmoid(z[0]), torch.sigmoid(z[1]), torch.sigmoid(z[3])
        g_ = torch.tanh(z[2])
        if cand_mask is not None:
            g_ = g_ * _at(cand_mask, t)
        c_new = f * c + i * g_
        h_new = o * torch.tanh(c_new)
        if u_c is not None:
            c_new = _at(u_c, t) * c_new + (1 - _at(u_c, t)) * c
        if u_h is not None:
            h_new = _at(u_h, t) * h_new + (1 - _at(u_h, t)) * h
        h, c = h_new, c_new
        outs.append(h)
    return torch.stack(outs, 1), h, c


def ref_gru_layer(x, h, w_ih, w_hh, b_i, b_h, in_mask=None, rec_mask=None, untied=False,
                  cand_mask=None, u_h=None):
    """One GRU layer (PyTorch's equations, reset applied after the recurrent matmul), one time
    step and one gate at a time. Row blocks r, z, n; b_i input-side, b_h recurrent-side bias.

        r = sig(x W_r^T + b_r + (h*m_r) U_r^T + bh_r)
        z = sig(x W_z^T + b_z + (h*m_z) U_z^T + bh_z)
        n = tanh(x W_n^T + b_n + r * ((h*m_n) U_n^T + bh_n))
        h' = (1 - z) * (cand * n) + z * h            then zoneout: u*h' + (1-u)*h
    The recurrent mask never touches the z * h mix."""
    hid = h.shape[-1]
    outs = []
    for t in range(x.shape[1]):
        a, r_side = [], []
        for g in range(3):
            rows = slice(g * hid, (g + 1) * hid)
            xg = x[:, t] * _gate_mask(in_mask, g, untied)
            hg = h * _gate_mask(rec_mask, g, untied)
            a.append(xg @ w_ih[rows].T + b_i[rows])
            r_side.append(hg @ w_hh[rows].T + b_h[rows])
        r = torch.sigmoid(a[0] + r_side[0])
        z = torch.sigmoid(a[1] + r_side[1])
        n = torch.tanh(a[2] + r * r_side[2])
        if cand_mask is not None:
            n = n * _at(cand_mask, t)
        h_new = (1 - z) * n + z * h
        if u_h is not None:
            h_new = _at(u_h, t) * h_new + (1 - _at(u_h, t)) * h
        h = h_new
        outs.append(h)
    return torch.stack(outs, 1), h


def masked_recurrent_weight(variant, w_hh: torch.Tensor, mask: torch.Tensor):
    """weight_hh (G*H, H) with its DropConnect mask, each form spelled out row/column/block-wise."""
    v = getattr(variant, "value", variant)
    rows, hid = w_hh.shape
    if v == "weightdrop":
        return w_hh * mask
    if v == "weightdrop_variational":  # whole rows (gate units)
        return torch.stack([w_hh[r] * mask[r, 0] for r in range(rows)])
    if v == "weightdrop_column":  # whole columns (units of h_{t-1})
        return torch.stack([w_hh[:, j] * mask[0, j] for j in range(hid)], 1)
    if v == "weightdrop_column_untied":  # one column mask per gate block
        return torch.cat([w_hh[g * hid : (g + 1) * hid] * mask[g, 0] for g in range(rows // hid)])
    raise AssertionError(v)


def zoneout_update(spec, masks: dict, k: int, which: str, deterministic: bool):
    """u for `zoneout_{which}.{k}`: from the drawn mask (u = 1 where the mask keeps, i.e. is
    non-zero: take the update), or the constant 1 - p in deterministic evaluation; None when
    that zoneout is off."""
    name = f"zoneout_{which}.{k}"
    if name in masks:
        return (masks[name] != 0).to(torch.float64)
    p = rate_of(spec, f"zoneout_{which}")
    if deterministic and p > 0 and getattr(spec.variant, "value", spec.variant) == "zoneout":
        return 1.0 - p
    return None


def ref_forward(spec, p: dict, masks: dict, x: np.ndarray, state=None, deterministic=False):
    """Logits ((B, T, C) LM, (B, C) classifier) and the final (h, c) lists of one forward
    (c entries are None for a GRU). `state`: (h0, c0), each indexable by layer (c0 ignored for
    a GRU). `deterministic`: standard evaluation (zoneout's expectation; masks must be empty)."""
    v = getattr(spec.variant, "value", spec.variant)
    cell = cell_of(spec)
    emb = p["embedding"]
    if "embedding" in masks:
        emb = emb * masks["embedding"]
    out = emb[torch.as_tensor(x, dtype=torch.long)]
    b = x.shape[0]
    hs, cs = [], []
    for k in range(spec.num_layers):
        m_in, m_rec = masks.get(f"input.{k}"), masks.get(f"recurrent.{k}")
        if v not in GAL and m_in is not None:
            out = out * m_in
            m_in = None
        w_hh = p[f"rnn.{k}.w_hh"]
        if f"weight.{k}" in masks:
            w_hh = masked_recurrent_weight(v, w_hh, masks[f"weight.{k}"])
        zeros = torch.zeros(b, spec.hidden_size, dtype=torch.float64)
        h0 = zeros if state is None else state[0][k]
        c0 = zeros if state is None or state[1] is None else state[1][k]
        cand = masks.get(f"candidate.{k}")
        u_h = zoneout_update(spec, masks, k, "hidden", deterministic)
        if cell == "gru":
            out, h = ref_gru_layer(out, h0, p[f"rnn.{k}.w_ih"], w_hh, p[f"rnn.{k}.bias"],
                                   p[f"rnn.{k}.bias_hh"], m_in, m_rec, v in UNTIED, cand, u_h)
            c = None
        else:
            u_c = zoneout_update(spec, masks, k, "cell", deterministic)
            out, h, c = ref_layer(out, h0, c0, p[f"rnn.{k}.w_ih"], w_hh, p[f"rnn.{k}.bias"],
                                  m_in, m_rec, v in UNTIED, cand, u_c, u_h)
        hs.append(h)
        cs.append(c)
    if spec.task_kind is TaskKind.CLASSIFIER:
        out = out[:, -1]
    if "output" in masks:
        out = out * masks["output"]
    dec = p["embedding"] if spec.tie_weights else p["decoder.weight"]
    return out @ dec.T + p["decoder.bias"], (hs, cs)


def ref_loss(logits: torch.Tensor, y: np.ndarray) -> torch.Tensor:
    """Mean cross-entropy written out: mean of logsumexp(z) - z[y]."""
    z = logits.reshape(-1, logits.shape[-1])
    t = torch.as_tensor(y, dtype=torch.long).reshape(-1)
    return (torch.logsumexp(z, -1) - z[torch.arange(len(t)), t]).mean()
