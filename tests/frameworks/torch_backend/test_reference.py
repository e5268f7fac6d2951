"""The checks that make the PyTorch backend tests' independent reference trustworthy
(tests/support/torch_reference.py): it equals torch.nn.LSTM / torch.nn.GRU without masks and
hand-unrolled algebra with masks (Gal, WeightDrop, Semeniuta, zoneout)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from frameworks.base import initial_weights
from frameworks.spec import ModelSpec, TaskKind, Variant
from tests.support.torch_reference import (
    GATES,
    as_params,
    cell_of,
    masked_recurrent_weight,
    rate_of,
    ref_forward,
    ref_gru_layer,
    ref_layer,
)

# --- the reference's own checks -----------------------------------------------------------


def _spec(**kw) -> ModelSpec:
    base = dict(
        task_kind=TaskKind.LANGUAGE_MODEL, vocab_size=11, num_outputs=11, embed_size=4,
        hidden_size=5, num_layers=2, variant=Variant.NONE, init_scale=0.5,
    )  # fmt: skip
    base.update(kw)
    return ModelSpec(**base)


def standin(**kw) -> SimpleNamespace:
    """What ref_forward reads of a spec, for cells and variants a ModelSpec may not have yet."""
    base = dict(task_kind=TaskKind.LANGUAGE_MODEL, vocab_size=11, num_outputs=11, embed_size=4,
                hidden_size=5, num_layers=2, variant="none", cell="lstm", tie_weights=False)
    return SimpleNamespace(**{**base, **kw})


def contract_weights(spec, seed: int = 0, scale: float = 0.5) -> dict[str, np.ndarray]:
    """Random weights under the contract's names and shapes, written from the contract (not from
    frameworks.base): G = 4 (LSTM) or 3 (GRU, plus rnn.{k}.bias_hh)."""
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


def test_reference_without_masks_equals_nn_lstm():
    spec = _spec()
    w = initial_weights(spec, 3)
    p = as_params(w)
    x = np.random.default_rng(0).integers(0, 11, (3, 6))
    logits, _ = ref_forward(spec, p, {}, x)
    lstm = torch.nn.LSTM(4, 5, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for k in range(2):
            getattr(lstm, f"weight_ih_l{k}").copy_(torch.tensor(w[f"rnn.{k}.w_ih"]))
            getattr(lstm, f"weight_hh_l{k}").copy_(torch.tensor(w[f"rnn.{k}.w_hh"]))
            getattr(lstm, f"bias_ih_l{k}").copy_(torch.tensor(w[f"rnn.{k}.bias"]))
            getattr(lstm, f"bias_hh_l{k}").zero_()
        out, _ = lstm(torch.tensor(w["embedding"], dtype=torch.float64)[torch.as_tensor(x)])
        expected = out @ p["decoder.weight"].T + p["decoder.bias"]
    torch.testing.assert_close(logits.detach(), expected, atol=1e-12, rtol=0)


def _nn_gru(w: dict, layers: int, e: int, h: int) -> torch.nn.GRU:
    gru = torch.nn.GRU(e, h, num_layers=layers, batch_first=True).double()
    with torch.no_grad():
        for k in range(layers):
            for theirs, ours in (("weight_ih", "w_ih"), ("weight_hh", "w_hh"),
                                 ("bias_ih", "bias"), ("bias_hh", "bias_hh")):
                getattr(gru, f"{theirs}_l{k}").copy_(torch.tensor(w[f"rnn.{k}.{ours}"]))
    return gru


@pytest.mark.parametrize("task", [TaskKind.LANGUAGE_MODEL, TaskKind.CLASSIFIER])
def test_gru_reference_without_masks_equals_nn_gru(task):
    """Weights mapped one to one: w_ih -> weight_ih, w_hh -> weight_hh, bias -> bias_ih,
    bias_hh -> bias_hh (row blocks r, z, n in both); from a non-zero initial state too."""
    spec = standin(cell="gru", task_kind=task, num_outputs=11 if task.value == "lm" else 3)
    w = contract_weights(spec, 4)
    p = as_params(w)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 11, (3, 6))
    h0 = torch.tensor(rng.normal(size=(2, 3, 5)) * 0.5)
    logits, (hs, cs) = ref_forward(spec, p, {}, x, (h0, None))
    assert cs == [None, None]
    gru = _nn_gru(w, 2, 4, 5)
    with torch.no_grad():
        out, h_n = gru(p["embedding"][torch.as_tensor(x)], h0)
        if task is TaskKind.CLASSIFIER:
            out = out[:, -1]
        expected = out @ p["decoder.weight"].T + p["decoder.bias"]
    torch.testing.assert_close(logits.detach(), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.stack(hs).detach(), h_n, atol=1e-12, rtol=0)
    # the two biases are not interchangeable: bias_hh sits inside the reset product of gate n
    swapped = {**p, "rnn.0.bias": p["rnn.0.bias_hh"], "rnn.0.bias_hh": p["rnn.0.bias"]}
    assert not torch.allclose(ref_forward(spec, swapped, {}, x, (h0, None))[0], logits)


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


def _gru_params(rng, d: int = 3, hid: int = 4):
    t = lambda *s: torch.tensor(rng.normal(size=s))  # noqa: E731
    return t(3 * hid, d), t(3 * hid, hid), t(3 * hid), t(3 * hid)


def test_gru_one_step_by_hand_and_the_recurrent_mask_never_reaches_the_mix():
    """h' = (1-z) n + z h; a recurrent mask on gate n acts inside the reset product,
    r * ((h*m) U_n^T + bh_n); a zero recurrent mask on every gate still leaves z * h."""
    rng = np.random.default_rng(2)
    x, h = torch.tensor(rng.normal(size=(2, 1, 3))), torch.tensor(rng.normal(size=(2, 4)))
    w_ih, w_hh, b_i, b_h = _gru_params(rng)
    sig, xt = torch.sigmoid, x[:, 0]
    gi = xt @ w_ih.T + b_i
    gh = h @ w_hh.T + b_h
    r, z = sig(gi[:, :4] + gh[:, :4]), sig(gi[:, 4:8] + gh[:, 4:8])
    n = torch.tanh(gi[:, 8:] + r * gh[:, 8:])
    _, h1 = ref_gru_layer(x, h, w_ih, w_hh, b_i, b_h)
    torch.testing.assert_close(h1, (1 - z) * n + z * h, atol=1e-12, rtol=0)

    m_n = torch.tensor([[2.0, 0.0, 0.0, 2.0]] * 2, dtype=torch.float64)
    rec = torch.stack([torch.ones(2, 4, dtype=torch.float64)] * 2 + [m_n])  # gate n only
    _, h1 = ref_gru_layer(x, h, w_ih, w_hh, b_i, b_h, None, rec, untied=True)
    n_m = torch.tanh(gi[:, 8:] + r * ((h * m_n) @ w_hh[8:].T + b_h[8:]))
    torch.testing.assert_close(h1, (1 - z) * n_m + z * h, atol=1e-12, rtol=0)

    zero = torch.zeros(2, 4, dtype=torch.float64)
    _, h1 = ref_gru_layer(x, h, w_ih, w_hh, b_i, b_h, None, zero)
    r0, z0 = sig(gi[:, :4] + b_h[:4]), sig(gi[:, 4:8] + b_h[4:8])
    n0 = torch.tanh(gi[:, 8:] + r0 * b_h[8:])
    torch.testing.assert_close(h1, (1 - z0) * n0 + z0 * h, atol=1e-12, rtol=0)


def test_gru_column_weight_masks_equal_recurrent_masks_and_rows_do_not():
    """(W_hh * col) h == W_hh (col * h) holds for the GRU too (bh is not masked in either), per
    gate block for the untied form; a row mask also scales bh's partner term, so it differs."""
    rng = np.random.default_rng(3)
    x, h = torch.tensor(rng.normal(size=(2, 5, 3))), torch.tensor(rng.normal(size=(2, 4)))
    w_ih, w_hh, b_i, b_h = _gru_params(rng)
    col = torch.tensor([[2.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    by_w = ref_gru_layer(x, h, w_ih, masked_recurrent_weight("weightdrop_column", w_hh, col),
                         b_i, b_h)[0]
    by_h = ref_gru_layer(x, h, w_ih, w_hh, b_i, b_h, None, col.expand(2, 4))[0]
    torch.testing.assert_close(by_w, by_h, atol=1e-12, rtol=0)
    untied = torch.stack([col, col.flip(1), 2.0 - col])  # (3, 1, H)
    by_w = ref_gru_layer(x, h, w_ih, masked_recurrent_weight("weightdrop_column_untied", w_hh,
                                                             untied), b_i, b_h)[0]
    by_h = ref_gru_layer(x, h, w_ih, w_hh, b_i, b_h, None, untied.expand(3, 2, 4), True)[0]
    torch.testing.assert_close(by_w, by_h, atol=1e-12, rtol=0)
    row = torch.tensor([[2.0], [0.0], [2.0], [2.0]] * 3, dtype=torch.float64)
    by_row = ref_gru_layer(x, h, w_ih, masked_recurrent_weight("weightdrop_variational", w_hh,
                                                               row), b_i, b_h)[0]
    assert not torch.allclose(by_row, ref_gru_layer(x, h, w_ih, w_hh, b_i, b_h, None,
                                                    col.expand(2, 4))[0])


def test_semeniuta_lstm_masks_the_candidate_after_its_tanh():
    """c_1 = f c_0 + i (m * tanh(z_g)), h_1 = o tanh(c_1): the mask scales g, not z_g, and the
    old memory f c_0 is untouched; an all-ones mask is the plain cell."""
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=(2, 1, 3)))
    h, c = torch.tensor(rng.normal(size=(2, 4))), torch.tensor(rng.normal(size=(2, 4)))
    w_ih, w_hh = torch.tensor(rng.normal(size=(16, 3))), torch.tensor(rng.normal(size=(16, 4)))
    b = torch.tensor(rng.normal(size=16))
    m = torch.tensor([[[0.0, 2.0, 2.0, 0.0]], [[2.0, 2.0, 0.0, 0.0]]], dtype=torch.float64)
    _, h1, c1 = ref_layer(x, h, c, w_ih, w_hh, b, cand_mask=m)
    z = x[:, 0] @ w_ih.T + h @ w_hh.T + b
    sig = torch.sigmoid
    c_exp = sig(z[:, 4:8]) * c + sig(z[:, :4]) * (m[:, 0] * torch.tanh(z[:, 8:12]))
    torch.testing.assert_close(c1, c_exp, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1, sig(z[:, 12:]) * torch.tanh(c_exp), atol=1e-12, rtol=0)
    dropped = m[:, 0] == 0
    torch.testing.assert_close(c1[dropped], (sig(z[:, 4:8]) * c)[dropped], atol=1e-12, rtol=0)
    ones = torch.ones(2, 1, 4, dtype=torch.float64)
    for got, want in zip(ref_layer(x, h, c, w_ih, w_hh, b, cand_mask=ones),
                         ref_layer(x, h, c, w_ih, w_hh, b), strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_semeniuta_per_sequence_mask_is_a_per_step_mask_constant_in_time():
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.normal(size=(2, 6, 3)))
    h, c = torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64)
    w_ih, w_hh = torch.tensor(rng.normal(size=(16, 3))), torch.tensor(rng.normal(size=(16, 4)))
    b = torch.tensor(rng.normal(size=16))
    seq = torch.tensor((rng.random((2, 1, 4)) > 0.5) * 2.0)
    a = ref_layer(x, h, c, w_ih, w_hh, b, cand_mask=seq)[0]
    torch.testing.assert_close(a, ref_layer(x, h, c, w_ih, w_hh, b,
                                            cand_mask=seq.expand(2, 6, 4))[0], atol=0, rtol=0)
    step = torch.tensor((rng.random((2, 6, 4)) > 0.5) * 2.0)
    step[:, 0] = seq[:, 0]
    out = ref_layer(x, h, c, w_ih, w_hh, b, cand_mask=step)[0]
    torch.testing.assert_close(out[:, 0], a[:, 0], atol=0, rtol=0)  # step t uses mask[:, t]
    assert not torch.allclose(out[:, 1:], a[:, 1:])


def test_semeniuta_gru_masks_n_in_the_mix_only():
    rng = np.random.default_rng(6)
    x, h = torch.tensor(rng.normal(size=(2, 1, 3))), torch.tensor(rng.normal(size=(2, 4)))
    w_ih, w_hh, b_i, b_h = _gru_params(rng)
    m = torch.tensor([[[0.0, 2.0, 2.0, 0.0]], [[2.0, 0.0, 2.0, 2.0]]], dtype=torch.float64)
    _, h1 = ref_gru_layer(x, h, w_ih, w_hh, b_i, b_h, cand_mask=m)
    gi, gh = x[:, 0] @ w_ih.T + b_i, h @ w_hh.T + b_h
    r, z = torch.sigmoid(gi[:, :4] + gh[:, :4]), torch.sigmoid(gi[:, 4:8] + gh[:, 4:8])
    n = torch.tanh(gi[:, 8:] + r * gh[:, 8:])
    torch.testing.assert_close(h1, (1 - z) * (m[:, 0] * n) + z * h, atol=1e-12, rtol=0)


def _lstm_params(rng, d: int = 3, hid: int = 4):
    t = lambda *s: torch.tensor(rng.normal(size=s))  # noqa: E731
    return t(4 * hid, d), t(4 * hid, hid), t(4 * hid)


def test_zoneout_lstm_two_steps_by_hand():
    """Krueger et al. 2017: c_t = d^c c_{t-1} + (1-d^c) c~_t and h_t = d^h h_{t-1} +
    (1-d^h) o tanh(c~_t) with c~_t = f c_{t-1} + i g (u = 1 - d here): the h update reads the
    new UN-ZONED cell c~_t, while the next step's gates and cell read the zoned c_t, h_t."""
    rng = np.random.default_rng(7)
    x = torch.tensor(rng.normal(size=(2, 2, 3)))
    h0, c0 = torch.tensor(rng.normal(size=(2, 4))), torch.tensor(rng.normal(size=(2, 4)))
    w_ih, w_hh, b = _lstm_params(rng)
    u_c = torch.tensor(rng.random((2, 2, 4)) > 0.5, dtype=torch.float64)
    u_h = torch.tensor(rng.random((2, 2, 4)) > 0.5, dtype=torch.float64)
    u_c[0, 0], u_h[0, 0] = 0.0, 1.0  # sample 0, step 0: cell kept, hidden updated

    def plain_step(xt, h, c):
        z = xt @ w_ih.T + h @ w_hh.T + b
        sig = torch.sigmoid
        c_new = sig(z[:, 4:8]) * c + sig(z[:, :4]) * torch.tanh(z[:, 8:12])
        return sig(z[:, 12:]) * torch.tanh(c_new), c_new

    h, c, outs = h0, c0, []
    for t in range(2):
        h_new, c_new = plain_step(x[:, t], h, c)
        h, c = u_h[:, t] * h_new + (1 - u_h[:, t]) * h, u_c[:, t] * c_new + (1 - u_c[:, t]) * c
        outs.append(h)
    out, h2, c2 = ref_layer(x, h0, c0, w_ih, w_hh, b, u_c=u_c, u_h=u_h)
    torch.testing.assert_close(out, torch.stack(outs, 1), atol=1e-12, rtol=0)
    torch.testing.assert_close((h2, c2), (h, c), atol=1e-12, rtol=0)
    # the case that tells the two readings apart: kept cell, updated hidden
    h_tilde, c_tilde = plain_step(x[:1, 0], h0[:1], c0[:1])
    _, h1, c1 = ref_layer(x[:1, :1], h0[:1], c0[:1], w_ih, w_hh, b,
                          u_c=torch.zeros(1, 1, 4, dtype=torch.float64),
                          u_h=torch.ones(1, 1, 4, dtype=torch.float64))
    torch.testing.assert_close(c1, c0[:1], atol=0, rtol=0)
    torch.testing.assert_close(h1, h_tilde, atol=1e-12, rtol=0)
    z = x[:1, 0] @ w_ih.T + h0[:1] @ w_hh.T + b
    assert not torch.allclose(h1, torch.sigmoid(z[:, 12:]) * torch.tanh(c0[:1]))


def test_zoneout_extremes_and_expectation():
    """All-update masks are the plain cell; all-keep masks freeze (h, c) at their initial values;
    the deterministic form u = 1 - p mixes old and new with weights p and 1 - p."""
    rng = np.random.default_rng(8)
    x = torch.tensor(rng.normal(size=(2, 5, 3)))
    h0, c0 = torch.tensor(rng.normal(size=(2, 4))), torch.tensor(rng.normal(size=(2, 4)))
    w_ih, w_hh, b = _lstm_params(rng)
    ones = torch.ones(2, 5, 4, dtype=torch.float64)
    plain = ref_layer(x, h0, c0, w_ih, w_hh, b)
    for got, want in zip(ref_layer(x, h0, c0, w_ih, w_hh, b, u_c=ones, u_h=ones), plain,
                         strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    out, h, c = ref_layer(x, h0, c0, w_ih, w_hh, b, u_c=0 * ones, u_h=0 * ones)
    torch.testing.assert_close(out, h0[:, None].expand(2, 5, 4), atol=0, rtol=0)
    torch.testing.assert_close(c, c0, atol=0, rtol=0)
    _, h1, c1 = ref_layer(x[:, :1], h0, c0, w_ih, w_hh, b, u_c=0.7, u_h=0.4)
    _, ht, ct = ref_layer(x[:, :1], h0, c0, w_ih, w_hh, b)
    torch.testing.assert_close(c1, 0.3 * c0 + 0.7 * ct, atol=1e-12, rtol=0)
    torch.testing.assert_close(h1, 0.6 * h0 + 0.4 * ht, atol=1e-12, rtol=0)

    w_ih, w_hh, b_i, b_h = _gru_params(rng)
    plain = ref_gru_layer(x, h0, w_ih, w_hh, b_i, b_h)
    for got, want in zip(ref_gru_layer(x, h0, w_ih, w_hh, b_i, b_h, u_h=ones), plain,
                         strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    out, _ = ref_gru_layer(x, h0, w_ih, w_hh, b_i, b_h, u_h=0 * ones)
    torch.testing.assert_close(out, h0[:, None].expand(2, 5, 4), atol=0, rtol=0)
    _, h1 = ref_gru_layer(x[:, :1], h0, w_ih, w_hh, b_i, b_h, u_h=0.25)
    torch.testing.assert_close(h1, 0.75 * h0 + 0.25 * plain[0][:, 0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forward_turns_sampler_masks_into_zoneout_updates(cell):
    """Sampler masks are 0 or 1/(1-p): a kept entry (1/(1-p)) takes the update, a dropped one
    (0) keeps the previous value; no 1/(1-p) scaling reaches the state. Standard evaluation
    (deterministic) is every layer with the constant u = 1 - p."""
    p_c, p_h = (0.3, 0.6) if cell == "lstm" else (0.0, 0.6)
    spec = standin(variant="zoneout", cell=cell, zoneout_cell_dropout=p_c,
                   zoneout_hidden_dropout=p_h)
    w = as_params(contract_weights(spec, 9))
    x = np.random.default_rng(9).integers(0, 11, (2, 4))
    plain, _ = ref_forward(standin(cell=cell), w, {}, x)
    names = ["zoneout_hidden"] + (["zoneout_cell"] if cell == "lstm" else [])
    keep_all = {f"{n}.{k}": torch.full((2, 4, 5), 1 / (1 - rate_of(spec, n)),
                                       dtype=torch.float64)
                for n in names for k in range(2)}
    got, _ = ref_forward(spec, w, keep_all, x)
    torch.testing.assert_close(got, plain, atol=1e-12, rtol=0)
    frozen = {n: 0 * m for n, m in keep_all.items()}
    got, (hs, _) = ref_forward(spec, w, frozen, x)  # h stays at the zero initial state
    torch.testing.assert_close(got, w["decoder.bias"].expand(2, 4, 11), atol=0, rtol=0)
    torch.testing.assert_close(torch.stack(hs), torch.zeros(2, 2, 5, dtype=torch.float64))

    det, _ = ref_forward(spec, w, {}, x, deterministic=True)
    assert not torch.allclose(det, plain)
    seq = w["embedding"][torch.as_tensor(x)]
    zero = torch.zeros(2, 5, dtype=torch.float64)
    for k in range(2):
        wk = [w[f"rnn.{k}.{n}"] for n in ("w_ih", "w_hh", "bias")]
        if cell == "lstm":
            seq = ref_layer(seq, zero, zero, *wk, u_c=1 - p_c, u_h=1 - p_h)[0]
        else:
            seq = ref_gru_layer(seq, zero, *wk, w[f"rnn.{k}.bias_hh"], u_h=1 - p_h)[0]
    torch.testing.assert_close(det, seq @ w["decoder.weight"].T + w["decoder.bias"],
                               atol=1e-12, rtol=0)
