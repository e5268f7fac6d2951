"""An independent reference for the PyTorch backend tests, and the checks that make it trustworthy.

`ref_forward` is a plain-torch, float64, step-by-step, gate-by-gate LSTM model written straight
from docs/SEMANTICS.md and the contract in frameworks/base.py (weights by their numpy names, masks
by their contract names). It shares no code with frameworks/torch_backend. Its own tests pin it to
torch.nn.LSTM without masks and to hand-unrolled algebra with masks.
"""

from __future__ import annotations

import numpy as np
import torch

from frameworks.base import initial_weights
from frameworks.spec import ModelSpec, TaskKind, Variant

UNTIED = {Variant.KERAS_IMPL0, Variant.KERAS_IMPL1}
GAL = UNTIED | {Variant.KERAS_IMPL2}


def as_params(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """float64 leaf tensors (requiring grad) from a numpy weight dict."""
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}


def as_masks(names: list[str], drawn: list[np.ndarray]) -> dict[str, torch.Tensor]:
    """The last mask drawn under each name, as float64 tensors."""
    return {n: torch.tensor(m, dtype=torch.float64) for n, m in zip(names, drawn, strict=True)}


def _gate_mask(mask: torch.Tensor | None, g: int, untied: bool) -> torch.Tensor | float:
    if mask is None:
        return 1.0
    return mask[g] if untied else mask


def ref_layer(x, h, c, w_ih, w_hh, bias, in_mask=None, rec_mask=None, untied=False):
    """One LSTM layer, one time step and one gate at a time. Gates i, f, g, o in row blocks."""
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
        c = f * c + i * torch.tanh(z[2])
        h = o * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 1), h, c


def masked_recurrent_weight(variant: Variant, w_hh: torch.Tensor, mask: torch.Tensor):
    """weight_hh with its DropConnect mask, each form spelled out row/column/block-wise."""
    rows, hid = w_hh.shape
    if variant is Variant.WEIGHTDROP:
        return w_hh * mask
    if variant is Variant.WEIGHTDROP_VARIATIONAL:  # whole rows (gate units)
        return torch.stack([w_hh[r] * mask[r, 0] for r in range(rows)])
    if variant is Variant.WEIGHTDROP_COLUMN:  # whole columns (units of h_{t-1})
        return torch.stack([w_hh[:, j] * mask[0, j] for j in range(hid)], 1)
    if variant is Variant.WEIGHTDROP_COLUMN_UNTIED:  # one column mask per gate block
        return torch.cat([w_hh[g * hid : (g + 1) * hid] * mask[g, 0] for g in range(4)])
    raise AssertionError(variant)


def ref_forward(spec: ModelSpec, p: dict, masks: dict, x: np.ndarray, state=None):
    """Logits ((B, T, C) LM, (B, C) classifier) and the final (h, c) lists of one forward."""
    v = spec.variant
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
        w_hh = p[f"lstm.{k}.w_hh"]
        if f"weight.{k}" in masks:
            w_hh = masked_recurrent_weight(v, w_hh, masks[f"weight.{k}"])
        if state is None:
            h0 = c0 = torch.zeros(b, spec.hidden_size, dtype=torch.float64)
        else:
            h0, c0 = state[0][k], state[1][k]
        out, h, c = ref_layer(
            out, h0, c0, p[f"lstm.{k}.w_ih"], w_hh, p[f"lstm.{k}.bias"], m_in, m_rec, v in UNTIED
        )
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


# --- the reference's own checks -----------------------------------------------------------


def _spec(**kw) -> ModelSpec:
    base = dict(
        task_kind=TaskKind.LANGUAGE_MODEL, vocab_size=11, num_outputs=11, embed_size=4,
        hidden_size=5, num_layers=2, variant=Variant.NONE, init_scale=0.5,
    )  # fmt: skip
    base.update(kw)
    return ModelSpec(**base)


def test_reference_without_masks_equals_nn_lstm():
    spec = _spec()
    w = initial_weights(spec, 3)
    p = as_params(w)
    x = np.random.default_rng(0).integers(0, 11, (3, 6))
    logits, _ = ref_forward(spec, p, {}, x)
    lstm = torch.nn.LSTM(4, 5, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for k in range(2):
            getattr(lstm, f"weight_ih_l{k}").copy_(torch.tensor(w[f"lstm.{k}.w_ih"]))
            getattr(lstm, f"weight_hh_l{k}").copy_(torch.tensor(w[f"lstm.{k}.w_hh"]))
            getattr(lstm, f"bias_ih_l{k}").copy_(torch.tensor(w[f"lstm.{k}.bias"]))
            getattr(lstm, f"bias_hh_l{k}").zero_()
        out, _ = lstm(torch.tensor(w["embedding"], dtype=torch.float64)[torch.as_tensor(x)])
        expected = out @ p["decoder.weight"].T + p["decoder.bias"]
    torch.testing.assert_close(logits.detach(), expected, atol=1e-12, rtol=0)


def test_reference_masks_act_on_the_right_connections():
    """One step, one unit: a recurrent mask on gate f only changes f; a column mask on unit j of
    weight_hh equals masking h_{t-1}[j] for every gate."""
    rng = np.random.default_rng(1)
    x = torch.tensor(rng.normal(size=(2, 1, 3)))
    h = torch.tensor(rng.normal(size=(2, 4)))
    c = torch.tensor(rng.normal(size=(2, 4)))
    w_ih, w_hh = torch.tensor(rng.normal(size=(16, 3))), torch.tensor(rng.normal(size=(16, 4)))
    b = torch.tensor(rng.normal(size=16))
    rec = torch.ones(4, 2, 4, dtype=torch.float64)
    rec[1] = 0.0  # forget gate sees no h_{t-1}
    _, h1, c1 = ref_layer(x, h, c, w_ih, w_hh, b, None, rec, untied=True)
    z = x[:, 0] @ w_ih.T + b + h @ w_hh.T
    zf = x[:, 0] @ w_ih[4:8].T + b[4:8]
    sig = torch.sigmoid
    c_exp = sig(zf) * c + sig(z[:, :4]) * torch.tanh(z[:, 8:12])
    torch.testing.assert_close(c1, c_exp)
    torch.testing.assert_close(h1, sig(z[:, 12:]) * torch.tanh(c_exp))
    col = torch.tensor([[2.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    w_col = masked_recurrent_weight(Variant.WEIGHTDROP_COLUMN, w_hh, col)
    a = ref_layer(x, h, c, w_ih, w_col, b)
    bb = ref_layer(x, h, c, w_ih, w_hh, b, None, col.expand(2, 4))
    torch.testing.assert_close(a[0], bb[0])
