"""An independent numpy model (float64, explicit per-gate step loop, LSTM or GRU cell) that the
Keras tests compare against, written from docs/SEMANTICS.md, the papers it cites and the naming
schemes of frameworks/base.py only; its own tests, so a wrong reference cannot make every
comparison pass, are in tests/frameworks/keras_backend/test_reference.py.

It reads the spec only through attributes (`variant.value`, `cell`, rates, sizes), so a plain
stand-in object with those fields works as well as a `ModelSpec`."""

from __future__ import annotations

import numpy as np

from frameworks.spec import TaskKind

# variants whose input.{k} mask multiplies the layer's input sequence (not inside a step loop)
SEQUENCE_MASKED = {"naive", "locked", "weightdrop", "weightdrop_variational",
                   "weightdrop_column", "weightdrop_column_untied", "semeniuta"}
GAL = {"keras_impl0", "keras_impl1", "keras_impl2"}
NO_INPUT_MASK = {"none", "torch_builtin", "keras3_builtin", "zoneout"}
GATES = {"lstm": 4, "gru": 3}


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def cell_of(spec) -> str:
    """`lstm` or `gru` (specs made before the cell field existed are LSTMs)."""
    cell = getattr(spec, "cell", "lstm")
    return str(getattr(cell, "value", cell))


def rate_of(spec, name: str) -> float:
    return float(getattr(spec, f"{name}_dropout", 0.0))


def expand_weight_mask(mask: np.ndarray, hidden: int, gates: int = 4) -> np.ndarray:
    """Any weight-drop mask of the naming scheme -> the full (G*H, H) mask on w_hh."""
    if mask.ndim == 3:  # (G, 1, H): gate block g of w_hh uses mask[g]
        return np.concatenate([np.broadcast_to(mask[g], (hidden, hidden))
                               for g in range(mask.shape[0])])
    return np.broadcast_to(mask, (gates * hidden, hidden))


def _gate(mask, g: int):
    """Mask of gate g: (G, Bm, .) one per gate, or (Bm, .) shared by the gates."""
    return mask[g] if mask.ndim == 3 else mask


def _at(value, t: int):
    """Step t of a per-step (B, T, H) array, of a per-sequence (Bm, 1, H) one, or a scalar."""
    if isinstance(value, np.ndarray) and value.ndim == 3:
        return value[:, t] if value.shape[1] > 1 else value[:, 0]
    return value


def lstm_ref(x, h, c, w_ih, w_hh, bias, in_mask=None, rec_mask=None, cand_mask=None,
             u_c=None, u_h=None):
    """x (B, T, D). Gal masks: (4, Bm, .) one per gate, or (Bm, .) shared by the gates.
    cand_mask (Semeniuta, (Bm, 1, H) or (Bm, T, H)) scales g = tanh(.) in the cell update.
    u_c, u_h (zoneout, (B, T, H) in {0, 1} or a scalar): 1 takes the update, 0 keeps the old
    value; h's update is o * tanh(new un-zoned cell)."""
    hid = w_hh.shape[1]
    outs = []
    for t in range(x.shape[1]):
        z = np.zeros((x.shape[0], 4 * hid))
        for g in range(4):
            rows = slice(g * hid, (g + 1) * hid)
            xg, hg = x[:, t], h
            if in_mask is not None:
                xg = xg * _gate(in_mask, g)
            if rec_mask is not None:
                hg = hg * _gate(rec_mask, g)
            z[:, rows] = xg @ w_ih[rows].T + hg @ w_hh[rows].T + bias[rows]
        i, f = sigmoid(z[:, :hid]), sigmoid(z[:, hid:2 * hid])
        g_, o = np.tanh(z[:, 2 * hid:3 * hid]), sigmoid(z[:, 3 * hid:])
        if cand_mask is not None:
            g_ = g_ * _at(cand_mask, t)
        c_new = f * c + i * g_
        h_new = o * np.tanh(c_new)
        if u_c is not None:
            c_new = _at(u_c, t) * c_new + (1 - _at(u_c, t)) * c
        if u_h is not None:
            h_new = _at(u_h, t) * h_new + (1 - _at(u_h, t)) * h
        h, c = h_new, c_new
        outs.append(h)
    return np.stack(outs, 1), h, c


def gru_ref(x, h, w_ih, w_hh, b_i, b_h, in_mask=None, rec_mask=None, cand_mask=None, u_h=None):
    """PyTorch's GRU (= Keras 3 reset_after=True), row blocks r, z, n:
    r = sig(x W_r + b_r + (h m_r) U_r + bh_r), z likewise, n = tanh(x W_n + b_n +
    r * ((h m_n) U_n + bh_n)), h' = (1 - z) * (cand * n) + z * h, then u h' + (1 - u) h."""
    hid = w_hh.shape[1]
    outs = []
    for t in range(x.shape[1]):
        a, rec = [], []
        for g in range(3):
            rows = slice(g * hid, (g + 1) * hid)
            xg, hg = x[:, t], h
            if in_mask is not None:
                xg = xg * _gate(in_mask, g)
            if rec_mask is not None:
                hg = hg * _gate(rec_mask, g)
            a.append(xg @ w_ih[rows].T + b_i[rows])
            rec.append(hg @ w_hh[rows].T + b_h[rows])
        r, z = sigmoid(a[0] + rec[0]), sigmoid(a[1] + rec[1])
        n = np.tanh(a[2] + r * rec[2])
        if cand_mask is not None:
            n = n * _at(cand_mask, t)
        h_new = (1 - z) * n + z * h
        if u_h is not None:
            h_new = _at(u_h, t) * h_new + (1 - _at(u_h, t)) * h
        h = h_new
        outs.append(h)
    return np.stack(outs, 1), h


def zoneout_update(spec, masks: dict, k: int, which: str, deterministic: bool):
    """u of `zoneout_{which}.{k}`: 1 where the drawn mask is non-zero (take the update), 0 where
    it is 0 (keep); 1 - p in deterministic evaluation; None when that zoneout is off."""
    name = f"zoneout_{which}.{k}"
    if name in masks:
        return (masks[name] != 0).astype(np.float64)
    p = rate_of(spec, f"zoneout_{which}")
    if deterministic and p > 0 and getattr(spec.variant, "value", spec.variant) == "zoneout":
        return 1.0 - p
    return None


def forward_ref(spec, weights, x, masks, states=None, deterministic=False):
    """Logits ((B*T, C) for the LM, (B, C) for a classifier) and the final states [(h, c)]
    (c is None for a GRU). `deterministic`: standard evaluation (zoneout's expectation)."""
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    masks = {k: np.asarray(v, np.float64) for k, v in masks.items()}
    v = getattr(spec.variant, "value", spec.variant)
    cell = cell_of(spec)
    hid, b = spec.hidden_size, x.shape[0]
    emb = w["embedding"]
    if "embedding" in masks:
        emb = emb * masks["embedding"]
    seq = emb[x]
    zero = np.zeros((b, hid))
    states = states or [(zero, None if cell == "gru" else zero)] * spec.num_layers
    new_states = []
    for k in range(spec.num_layers):
        w_hh = w[f"rnn.{k}.w_hh"]
        if f"weight.{k}" in masks:
            w_hh = w_hh * expand_weight_mask(masks[f"weight.{k}"], hid, GATES[cell])
        in_mask = masks.get(f"input.{k}")
        if in_mask is not None and v in SEQUENCE_MASKED:
            seq, in_mask = seq * in_mask, None
        cand, rec = masks.get(f"candidate.{k}"), masks.get(f"recurrent.{k}")
        u_h = zoneout_update(spec, masks, k, "hidden", deterministic)
        if cell == "gru":
            seq, h = gru_ref(seq, states[k][0], w[f"rnn.{k}.w_ih"], w_hh, w[f"rnn.{k}.bias"],
                             w[f"rnn.{k}.bias_hh"], in_mask, rec, cand, u_h)
            new_states.append((h, None))
        else:
            u_c = zoneout_update(spec, masks, k, "cell", deterministic)
            seq, h, c = lstm_ref(seq, *states[k], w[f"rnn.{k}.w_ih"], w_hh, w[f"rnn.{k}.bias"],
                                 in_mask, rec, cand, u_c, u_h)
            new_states.append((h, c))
    out = seq[:, -1] if spec.task_kind is TaskKind.CLASSIFIER else seq
    if "output" in masks:
        out = out * masks["output"]
    dec = w["embedding"] if spec.tie_weights else w["decoder.weight"]
    return out.reshape(-1, hid) @ dec.T + w["decoder.bias"], new_states


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def loss_ref(spec, weights, x, y, masks, states=None) -> float:
    logits, _ = forward_ref(spec, weights, x, masks, states)
    return float(-log_softmax(logits)[np.arange(len(logits)), y.reshape(-1)].mean())


def target_probs_ref(spec, weights, x, y, masks, states=None, deterministic=False):
    """What `predict` returns for one batch: target-token probabilities or class probabilities."""
    logits, new_states = forward_ref(spec, weights, x, masks, states, deterministic)
    logp = log_softmax(logits)
    if spec.task_kind is TaskKind.CLASSIFIER:
        return np.exp(logp), new_states
    return np.exp(logp[np.arange(len(logp)), y.reshape(-1)]), new_states


def numeric_grad(spec, weights, x, y, masks, names_idx, eps=1e-6):
    """Central differences of `loss_ref` at the given (name, flat index) coordinates."""
    base = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    out = []
    for name, idx in names_idx:
        plus = {**base, name: base[name].copy()}
        minus = {**base, name: base[name].copy()}
        plus[name].flat[idx] += eps
        minus[name].flat[idx] -= eps
        out.append((loss_ref(spec, plus, x, y, masks) - loss_ref(spec, minus, x, y, masks))
                   / (2 * eps))
    return np.array(out)
