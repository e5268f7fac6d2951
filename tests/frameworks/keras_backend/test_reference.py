"""Tests of the independent numpy model the Keras tests compare against
(tests/support/keras_reference.py), so a wrong reference cannot make every comparison pass."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from frameworks.base import initial_weights
from frameworks.spec import GAL_FAMILY, ModelSpec, TaskKind, Variant
from tests.support.keras_reference import (
    GAL,
    GATES,
    NO_INPUT_MASK,
    SEQUENCE_MASKED,
    cell_of,
    expand_weight_mask,
    forward_ref,
    gru_ref,
    log_softmax,
    lstm_ref,
    numeric_grad,
    rate_of,
    sigmoid,
)

pytestmark = pytest.mark.keras


# -- tests of the reference itself -----------------------------------------------------------
def _spec(**kw) -> ModelSpec:
    base = dict(task_kind="lm", vocab_size=7, num_outputs=7, embed_size=3, hidden_size=3,
                num_layers=1, variant="none", init_scale=0.5)
    return ModelSpec(**{**base, **kw})


def standin(**kw) -> SimpleNamespace:
    """What forward_ref reads of a spec, for cells and variants a ModelSpec may not have yet."""
    base = dict(task_kind=TaskKind.LANGUAGE_MODEL, vocab_size=7, num_outputs=7, embed_size=3,
                hidden_size=3, num_layers=2, variant="none", cell="lstm", tie_weights=False)
    return SimpleNamespace(**{**base, **kw})


def contract_weights(spec, seed: int = 0, scale: float = 0.5) -> dict[str, np.ndarray]:
    """Random weights under the contract's names and shapes, written from the contract."""
    rng = np.random.default_rng(seed)
    g, h = GATES[cell_of(spec)], spec.hidden_size
    shapes = {"embedding": (spec.vocab_size, spec.embed_size)}
    for k in range(spec.num_layers):
        d = spec.embed_size if k == 0 else h
        shapes |= {f"rnn.{k}.w_ih": (g * h, d), f"rnn.{k}.w_hh": (g * h, h),
                   f"rnn.{k}.bias": (g * h,)}
        if cell_of(spec) == "gru":
            shapes[f"rnn.{k}.bias_hh"] = (g * h,)
    shapes |= {"decoder.weight": (spec.num_outputs, h), "decoder.bias": (spec.num_outputs,)}
    return {n: rng.uniform(-scale, scale, s) for n, s in shapes.items()}


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


def test_every_variant_is_known_to_the_reference():
    assert {v.value for v in GAL_FAMILY} == GAL
    assert {v.value for v in Variant} <= SEQUENCE_MASKED | GAL | NO_INPUT_MASK


@pytest.mark.parametrize("task", ["lm", "classifier"])
def test_gru_reference_equals_keras_gru_reset_after(task):
    """The numpy GRU against the stock keras.layers.GRU(reset_after=True), weights mapped from
    the contract: Keras' gate blocks are z, r, h (ours r, z, n), kernel = W_ih^T, bias row 0 is
    the input-side bias and row 1 the recurrent-side one; from a non-zero initial state."""
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(2)
    b, t, d, h = 3, 5, 4, 6
    x = rng.normal(size=(b, t, d))
    h0 = rng.normal(size=(b, h)) * 0.5
    w_ih, w_hh = rng.uniform(-0.5, 0.5, (3 * h, d)), rng.uniform(-0.5, 0.5, (3 * h, h))
    b_i, b_h = rng.uniform(-0.5, 0.5, 3 * h), rng.uniform(-0.5, 0.5, 3 * h)
    zrn = np.r_[h:2 * h, 0:h, 2 * h:3 * h]  # Keras order z, r, h from ours r, z, n
    layer = keras.layers.GRU(h, reset_after=True, return_sequences=True, return_state=True,
                             use_cudnn=False, dtype="float64")
    layer.build((b, t, d))
    layer.set_weights([w_ih[zrn].T, w_hh[zrn].T, np.stack([b_i[zrn], b_h[zrn]])])
    seq, h_t = (np.asarray(a) for a in layer(x, initial_state=[h0]))
    ref_seq, ref_h = gru_ref(x, h0, w_ih, w_hh, b_i, b_h)
    np.testing.assert_allclose(ref_seq, seq, atol=1e-10)
    np.testing.assert_allclose(ref_h, h_t, atol=1e-10)
    # a forward through the model wiring, one layer, with the same cell
    spec = standin(cell="gru", num_layers=1, embed_size=d, hidden_size=h, vocab_size=9,
                   task_kind=TaskKind(task), num_outputs=9 if task == "lm" else 3)
    wts = contract_weights(spec, 3)
    ids = rng.integers(0, 9, (b, t))
    logits, states = forward_ref(spec, wts, ids, {})
    layer.set_weights([wts["rnn.0.w_ih"][zrn].T, wts["rnn.0.w_hh"][zrn].T,
                       np.stack([wts["rnn.0.bias"][zrn], wts["rnn.0.bias_hh"][zrn]])])
    seq, h_t = (np.asarray(a) for a in layer(wts["embedding"][ids]))
    out = seq.reshape(-1, h) if task == "lm" else h_t
    np.testing.assert_allclose(logits, out @ wts["decoder.weight"].T + wts["decoder.bias"],
                               atol=1e-10)
    np.testing.assert_allclose(states[0][0], h_t, atol=1e-10)
    assert states[0][1] is None


def test_gru_masks_by_hand_and_the_mix_is_never_masked():
    """One step: the recurrent mask of gate n sits inside the reset product; with a zero
    recurrent mask on every gate the update still mixes z * h_{t-1}; a (1, H) column mask on
    w_hh equals the shared recurrent mask, per gate block for (3, 1, H)."""
    rng = np.random.default_rng(3)
    x, h0 = rng.normal(size=(2, 1, 3)), rng.normal(size=(2, 4))
    w_ih, w_hh = rng.normal(size=(12, 3)), rng.normal(size=(12, 4))
    b_i, b_h = rng.normal(size=12), rng.normal(size=12)
    m_in = np.array([[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]])
    m_n = np.array([[2.0, 0.0, 0.0, 2.0]] * 2)
    rec = np.stack([np.ones((2, 4)), np.ones((2, 4)), m_n])
    _, h1 = gru_ref(x, h0, w_ih, w_hh, b_i, b_h, np.stack([m_in] * 3), rec)
    gi = (x[:, 0] * m_in) @ w_ih.T + b_i
    gh = h0 @ w_hh.T + b_h
    r, z = sigmoid(gi[:, :4] + gh[:, :4]), sigmoid(gi[:, 4:8] + gh[:, 4:8])
    n = np.tanh(gi[:, 8:] + r * ((h0 * m_n) @ w_hh[8:].T + b_h[8:]))
    np.testing.assert_allclose(h1, (1 - z) * n + z * h0, atol=1e-12)
    _, h1 = gru_ref(x, h0, w_ih, w_hh, b_i, b_h, None, np.zeros((2, 4)))
    gi = x[:, 0] @ w_ih.T + b_i
    r, z = sigmoid(gi[:, :4] + b_h[:4]), sigmoid(gi[:, 4:8] + b_h[4:8])
    n = np.tanh(gi[:, 8:] + r * b_h[8:])
    np.testing.assert_allclose(h1, (1 - z) * n + z * h0, atol=1e-12)

    xs = rng.normal(size=(2, 5, 3))
    col = np.array([[2.0, 0.0, 2.0, 2.0]])
    np.testing.assert_allclose(
        gru_ref(xs, h0, w_ih, w_hh * expand_weight_mask(col, 4, 3), b_i, b_h)[0],
        gru_ref(xs, h0, w_ih, w_hh, b_i, b_h, None, col)[0], atol=1e-12)
    untied = np.stack([col, col[:, ::-1], 2.0 - col])
    np.testing.assert_allclose(
        gru_ref(xs, h0, w_ih, w_hh * expand_weight_mask(untied, 4, 3), b_i, b_h)[0],
        gru_ref(xs, h0, w_ih, w_hh, b_i, b_h, None, untied)[0], atol=1e-12)
    assert expand_weight_mask(np.ones((12, 1)), 4, 3).shape == (12, 4)


def test_semeniuta_by_hand():
    """LSTM: c_1 = f c_0 + i (m * tanh(z_g)); GRU: h_1 = (1 - z) (m * n) + z h_0. A per-sequence
    (B, 1, H) mask is the per-step mask repeated over time; all-ones masks are the plain cell."""
    rng = np.random.default_rng(4)
    x, h0, c0 = rng.normal(size=(2, 1, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    w_ih, w_hh, b = rng.normal(size=(12, 3)), rng.normal(size=(12, 3)), rng.normal(size=12)
    m = np.array([[[0.0, 2.0, 2.0]], [[2.0, 0.0, 2.0]]])
    _, h1, c1 = lstm_ref(x, h0, c0, w_ih, w_hh, b, cand_mask=m)
    z = x[:, 0] @ w_ih.T + h0 @ w_hh.T + b
    c = sigmoid(z[:, 3:6]) * c0 + sigmoid(z[:, :3]) * (m[:, 0] * np.tanh(z[:, 6:9]))
    np.testing.assert_allclose(c1, c, atol=1e-12)
    np.testing.assert_allclose(h1, sigmoid(z[:, 9:]) * np.tanh(c), atol=1e-12)
    xs = rng.normal(size=(2, 6, 3))
    np.testing.assert_array_equal(lstm_ref(xs, h0, c0, w_ih, w_hh, b, cand_mask=m)[0],
                                  lstm_ref(xs, h0, c0, w_ih, w_hh, b,
                                           cand_mask=np.repeat(m, 6, 1))[0])
    np.testing.assert_array_equal(lstm_ref(xs, h0, c0, w_ih, w_hh, b, cand_mask=np.ones_like(m))[0],
                                  lstm_ref(xs, h0, c0, w_ih, w_hh, b)[0])
    per_step = np.repeat(m, 6, 1)
    per_step[:, 3] = 2.0 - per_step[:, 3]
    a = lstm_ref(xs, h0, c0, w_ih, w_hh, b, cand_mask=per_step)[0]
    b_ = lstm_ref(xs, h0, c0, w_ih, w_hh, b, cand_mask=m)[0]
    np.testing.assert_array_equal(a[:, :3], b_[:, :3])
    assert not np.allclose(a[:, 3:], b_[:, 3:])

    w_ih, w_hh, b_i, b_h = (rng.normal(size=s) for s in ((9, 3), (9, 3), 9, 9))
    _, h1 = gru_ref(x, h0, w_ih, w_hh, b_i, b_h, cand_mask=m)
    gi, gh = x[:, 0] @ w_ih.T + b_i, h0 @ w_hh.T + b_h
    r, zz = sigmoid(gi[:, :3] + gh[:, :3]), sigmoid(gi[:, 3:6] + gh[:, 3:6])
    n = np.tanh(gi[:, 6:] + r * gh[:, 6:])
    np.testing.assert_allclose(h1, (1 - zz) * (m[:, 0] * n) + zz * h0, atol=1e-12)


def test_zoneout_by_hand():
    """Krueger et al. 2017 with u = 1 - d: c_t = u^c c~_t + (1 - u^c) c_{t-1},
    h_t = u^h o tanh(c~_t) + (1 - u^h) h_{t-1}, c~_t = f c_{t-1} + i g: the h update reads the
    un-zoned c~_t. All-update masks are the plain cell, all-keep masks freeze the state, u = 1-p
    is the deterministic mix."""
    rng = np.random.default_rng(5)
    x, h0, c0 = rng.normal(size=(2, 1, 3)), rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    w_ih, w_hh, b = rng.normal(size=(12, 3)), rng.normal(size=(12, 3)), rng.normal(size=12)
    u_c = np.array([[[0.0, 1.0, 1.0]], [[1.0, 0.0, 1.0]]])
    u_h = np.array([[[1.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]]])
    _, ht, ct = lstm_ref(x, h0, c0, w_ih, w_hh, b)
    _, h1, c1 = lstm_ref(x, h0, c0, w_ih, w_hh, b, u_c=u_c, u_h=u_h)
    np.testing.assert_allclose(c1, u_c[:, 0] * ct + (1 - u_c[:, 0]) * c0, atol=1e-12)
    np.testing.assert_allclose(h1, u_h[:, 0] * ht + (1 - u_h[:, 0]) * h0, atol=1e-12)
    # sample 0 unit 0: the cell is kept but the hidden state takes o * tanh(c~), not o * tanh(c0)
    assert c1[0, 0] == c0[0, 0] and h1[0, 0] == ht[0, 0]
    o = sigmoid((x[:, 0] @ w_ih.T + h0 @ w_hh.T + b)[:, 9:])
    assert not np.isclose(h1[0, 0], (o * np.tanh(c0))[0, 0])

    xs = rng.normal(size=(2, 5, 3))
    ones = np.ones((2, 5, 3))
    for got, want in zip(lstm_ref(xs, h0, c0, w_ih, w_hh, b, u_c=ones, u_h=ones),
                         lstm_ref(xs, h0, c0, w_ih, w_hh, b), strict=True):
        np.testing.assert_array_equal(got, want)
    seq, _, c = lstm_ref(xs, h0, c0, w_ih, w_hh, b, u_c=0 * ones, u_h=0 * ones)
    np.testing.assert_array_equal(seq, np.broadcast_to(h0[:, None], (2, 5, 3)))
    np.testing.assert_array_equal(c, c0)
    _, h1, c1 = lstm_ref(x, h0, c0, w_ih, w_hh, b, u_c=0.7, u_h=0.4)
    np.testing.assert_allclose(c1, 0.3 * c0 + 0.7 * ct, atol=1e-12)
    np.testing.assert_allclose(h1, 0.6 * h0 + 0.4 * ht, atol=1e-12)

    w_ih, w_hh, b_i, b_h = (rng.normal(size=s) for s in ((9, 3), (9, 3), 9, 9))
    plain, _ = gru_ref(xs, h0, w_ih, w_hh, b_i, b_h)
    np.testing.assert_array_equal(gru_ref(xs, h0, w_ih, w_hh, b_i, b_h, u_h=ones)[0], plain)
    np.testing.assert_array_equal(gru_ref(xs, h0, w_ih, w_hh, b_i, b_h, u_h=0 * ones)[0],
                                  np.broadcast_to(h0[:, None], (2, 5, 3)))
    _, h1 = gru_ref(xs[:, :1], h0, w_ih, w_hh, b_i, b_h, u_h=0.25)
    np.testing.assert_allclose(h1, 0.75 * h0 + 0.25 * plain[:, 0], atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forward_turns_sampler_masks_into_zoneout_updates(cell):
    """Masks of 0 / 1/(1-p) become u in {0, 1} (no 1/(1-p) scaling of the state); standard
    evaluation is every layer with u = 1 - p."""
    p_c, p_h = (0.3, 0.6) if cell == "lstm" else (0.0, 0.6)
    spec = standin(variant="zoneout", cell=cell, zoneout_cell_dropout=p_c,
                   zoneout_hidden_dropout=p_h)
    w = contract_weights(spec, 6)
    x = np.random.default_rng(6).integers(0, 7, (2, 4))
    plain = forward_ref(standin(cell=cell), w, x, {})[0]
    names = ["zoneout_hidden"] + (["zoneout_cell"] if cell == "lstm" else [])
    keep = {f"{n}.{k}": np.full((2, 4, 3), 1 / (1 - rate_of(spec, n))) for n in names
            for k in range(2)}
    np.testing.assert_allclose(forward_ref(spec, w, x, keep)[0], plain, atol=1e-12)
    logits, states = forward_ref(spec, w, x, {n: 0 * m for n, m in keep.items()})
    np.testing.assert_array_equal(logits, np.broadcast_to(w["decoder.bias"], (8, 7)))
    det = forward_ref(spec, w, x, {}, deterministic=True)[0]
    assert not np.allclose(det, plain)
    seq, zero = w["embedding"][x], np.zeros((2, 3))
    for k in range(2):
        wk = [w[f"rnn.{k}.{n}"] for n in ("w_ih", "w_hh", "bias")]
        if cell == "lstm":
            seq = lstm_ref(seq, zero, zero, *wk, u_c=1 - p_c, u_h=1 - p_h)[0]
        else:
            seq = gru_ref(seq, zero, *wk, w[f"rnn.{k}.bias_hh"], u_h=1 - p_h)[0]
    np.testing.assert_allclose(det, seq.reshape(-1, 3) @ w["decoder.weight"].T
                               + w["decoder.bias"], atol=1e-12)
