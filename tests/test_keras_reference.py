"""An independent numpy model (float64, explicit per-gate step loop) that the Keras tests compare
against, written from docs/SEMANTICS.md and the naming schemes of frameworks/base.py only; plus
tests of the reference itself, so a wrong reference cannot make every comparison pass."""

from __future__ import annotations

import numpy as np
import pytest

from frameworks.base import initial_weights
from frameworks.spec import GAL_FAMILY, ModelSpec, TaskKind, Variant

pytestmark = pytest.mark.keras

SEQUENCE_MASKED = {"naive", "locked", "weightdrop", "weightdrop_variational",
                   "weightdrop_column", "weightdrop_column_untied"}


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def expand_weight_mask(mask: np.ndarray, hidden: int) -> np.ndarray:
    """Any weight-drop mask of the naming scheme -> the full (4H, H) mask on w_hh."""
    if mask.ndim == 3:  # (4, 1, H): gate block g of w_hh uses mask[g]
        return np.concatenate([np.broadcast_to(mask[g], (hidden, hidden)) for g in range(4)])
    return np.broadcast_to(mask, (4 * hidden, hidden))


def lstm_ref(x, h, c, w_ih, w_hh, bias, in_mask=None, rec_mask=None):
    """x (B, T, D). Masks: (4, Bm, .) one per gate, or (Bm, .) shared by the gates."""
    hid = w_hh.shape[1]
    outs = []
    for t in range(x.shape[1]):
        z = np.zeros((x.shape[0], 4 * hid))
        for g in range(4):
            rows = slice(g * hid, (g + 1) * hid)
            xg, hg = x[:, t], h
            if in_mask is not None:
                xg = xg * (in_mask[g] if in_mask.ndim == 3 else in_mask)
            if rec_mask is not None:
                hg = hg * (rec_mask[g] if rec_mask.ndim == 3 else rec_mask)
            z[:, rows] = xg @ w_ih[rows].T + hg @ w_hh[rows].T + bias[rows]
        i, f = sigmoid(z[:, :hid]), sigmoid(z[:, hid:2 * hid])
        g_, o = np.tanh(z[:, 2 * hid:3 * hid]), sigmoid(z[:, 3 * hid:])
        c = f * c + i * g_
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1), h, c


def forward_ref(spec: ModelSpec, weights, x, masks, states=None):
    """Logits ((B*T, C) for the LM, (B, C) for a classifier) and the final states."""
    w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    masks = {k: np.asarray(v, np.float64) for k, v in masks.items()}
    hid, b = spec.hidden_size, x.shape[0]
    emb = w["embedding"]
    if "embedding" in masks:
        emb = emb * masks["embedding"]
    seq = emb[x]
    states = states or [(np.zeros((b, hid)), np.zeros((b, hid)))] * spec.num_layers
    new_states = []
    for k in range(spec.num_layers):
        w_hh = w[f"lstm.{k}.w_hh"]
        if f"weight.{k}" in masks:
            w_hh = w_hh * expand_weight_mask(masks[f"weight.{k}"], hid)
        in_mask = masks.get(f"input.{k}")
        if in_mask is not None and spec.variant.value in SEQUENCE_MASKED:
            seq, in_mask = seq * in_mask, None
        seq, h, c = lstm_ref(seq, *states[k], w[f"lstm.{k}.w_ih"], w_hh, w[f"lstm.{k}.bias"],
                             in_mask, masks.get(f"recurrent.{k}"))
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


def target_probs_ref(spec, weights, x, y, masks, states=None):
    """What `predict` returns for one batch: target-token probabilities or class probabilities."""
    logits, new_states = forward_ref(spec, weights, x, masks, states)
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


# -- tests of the reference itself -----------------------------------------------------------
def _spec(**kw) -> ModelSpec:
    base = dict(task_kind="lm", vocab_size=7, num_outputs=7, embed_size=3, hidden_size=3,
                num_layers=1, variant="none", init_scale=0.5)
    return ModelSpec(**{**base, **kw})


def test_one_step_matches_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 1, 3))
    w_ih, w_hh, b = rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), rng.normal(size=8)
    h0, c0 = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    z = x[:, 0] @ w_ih.T + h0 @ w_hh.T + b
    c = sigmoid(z[:, 2:4]) * c0 + sigmoid(z[:, :2]) * np.tanh(z[:, 4:6])
    h = sigmoid(z[:, 6:]) * np.tanh(c)
    out, h1, c1 = lstm_ref(x, h0, c0, w_ih, w_hh, b)
    np.testing.assert_allclose(h1, h, atol=1e-12)
    np.testing.assert_allclose(c1, c, atol=1e-12)


def test_column_mask_equals_shared_recurrent_mask_and_row_mask_does_not():
    """SEMANTICS: (W_hh * c) @ h == W_hh @ (c * h) for a (1, H) column mask; a row mask is not
    a mask on h."""
    rng = np.random.default_rng(1)
    x, h0, c0 = rng.normal(size=(1, 4, 3)), rng.normal(size=(1, 3)), rng.normal(size=(1, 3))
    w_ih, w_hh, b = rng.normal(size=(12, 3)), rng.normal(size=(12, 3)), rng.normal(size=12)
    col = np.array([[2.0, 0.0, 2.0]])
    by_weight = lstm_ref(x, h0, c0, w_ih, w_hh * expand_weight_mask(col, 3), b)[0]
    by_state = lstm_ref(x, h0, c0, w_ih, w_hh, b, rec_mask=col)[0]
    np.testing.assert_allclose(by_weight, by_state, atol=1e-12)
    untied = np.stack([col, col[:, ::-1], col, col])
    by_weight = lstm_ref(x, h0, c0, w_ih, w_hh * expand_weight_mask(untied, 3), b)[0]
    np.testing.assert_allclose(by_weight, lstm_ref(x, h0, c0, w_ih, w_hh, b, rec_mask=untied)[0],
                               atol=1e-12)
    row = np.array([[2.0], [0.0], [2.0]] * 4)
    assert not np.allclose(lstm_ref(x, h0, c0, w_ih, w_hh * row, b)[0], by_state)


def test_per_gate_masks_differ_from_a_shared_mask():
    spec = _spec(variant="keras_impl1", input_dropout=0.5, recurrent_dropout=0.5)
    w = initial_weights(spec, 0)
    x = np.array([[1, 2, 3, 4]])
    m_in = np.stack([np.array([[2.0, 0, 2]]), np.array([[0, 2.0, 2]])] * 2)
    m_rec = np.stack([np.array([[2.0, 2, 0]])] * 4)
    untied = forward_ref(spec, w, x, {"input.0": m_in, "recurrent.0": m_rec})[0]
    tied = forward_ref(spec, w, x, {"input.0": m_in[0], "recurrent.0": m_rec[0]})[0]
    assert not np.allclose(untied, tied)
    same = forward_ref(spec, w, x, {"input.0": m_in[[0, 0, 0, 0]], "recurrent.0": m_rec})[0]
    np.testing.assert_allclose(same, tied, atol=1e-12)


def test_numeric_grad_of_reference_is_consistent():
    spec = _spec()
    w = initial_weights(spec, 0)
    x, y = np.array([[1, 2, 3]]), np.array([[2, 3, 4]])
    g = numeric_grad(spec, w, x, y, {}, [("decoder.bias", i) for i in range(7)])
    probs = np.exp(log_softmax(forward_ref(spec, w, x, {})[0]))
    onehot = np.eye(7)[y.reshape(-1)]
    np.testing.assert_allclose(g, (probs - onehot).mean(0), atol=1e-7)


def test_gal_family_names_are_known():
    assert {v.value for v in GAL_FAMILY} == {"keras_impl0", "keras_impl1", "keras_impl2"}
    assert SEQUENCE_MASKED | {v.value for v in GAL_FAMILY} | {"none", "torch_builtin",
                                                               "keras3_builtin"} == {
        v.value for v in Variant}
