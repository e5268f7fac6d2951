"""The PyTorch backend's GRU cell and the cell-level variants (semeniuta, zoneout) against the
independent float64 reference (tests/support/torch_reference.py), with masks injected by name.

Per case: logits, final state and every gradient equal the reference; the masks a forward call
draws have the contract's names, shapes, rates and order (written out here from the contract,
not from frameworks/masks.py); evaluation is the plain cell (semeniuta) or zoneout's
expectation; the specs the contract refuses are refused.

Zoneout rates are 0.5 and 0.75 in the exact comparisons: 1/(1-p) is exact in float32 there, so
the backend's u = m * (1 - p) is exactly 0 or 1 and float64 agreement can be asked to 1e-10;
`test_zoneout_with_an_inexact_rate_keeps_exactly_and_updates_closely` covers other rates.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frameworks.base import NumpyMaskSource, initial_weights, weight_shapes
from frameworks.masks import mask_plan
from frameworks.spec import (
    FRAMEWORK_VARIANTS,
    Batch,
    ModelSpec,
    OptimSpec,
    SpecError,
    TaskKind,
    Variant,
    rates_used_by,
)
from frameworks.torch_backend import Runner
from frameworks.torch_backend.model import DropoutLSTMModel
from frameworks.torch_backend.sampler import MaskSampler
from frameworks.torch_backend.weights import export_weights, load_weights
from tests.support.torch_reference import as_masks, as_params, ref_forward, ref_loss

LM, CLS = TaskKind.LANGUAGE_MODEL, TaskKind.CLASSIFIER
B, T, V, E, H, L = 3, 5, 20, 4, 5, 2
RATES = {"embedding": 0.25, "input": 0.3, "recurrent": 0.4, "weight": 0.5, "output": 0.2,
         "zoneout_cell": 0.5, "zoneout_hidden": 0.75}
GAL = ("keras_impl0", "keras_impl1", "keras_impl2")
LIBRARY = ("torch_builtin", "keras3_builtin")
GRU_VARIANTS = [v.value for v in Variant
                if v.value not in LIBRARY and v in FRAMEWORK_VARIANTS["torch"]]


def make_spec(variant: str, task: TaskKind = LM, cell: str = "lstm", rates: dict | None = None,
              **kw) -> ModelSpec:
    """Every rate the variant uses, from RATES (or `rates`); a GRU has no zoneout_cell."""
    used = rates_used_by(Variant(variant))
    chosen = {k: p for k, p in (RATES if rates is None else rates).items() if k in used}
    if cell == "gru":
        chosen.pop("zoneout_cell", None)
    base = dict(task_kind=task, vocab_size=V, num_outputs=V if task is LM else 3, embed_size=E,
                hidden_size=H, num_layers=L, variant=variant, cell=cell, init_scale=0.4)
    return ModelSpec(**{**base, **{f"{k}_dropout": p for k, p in chosen.items()}, **kw})


def make_model(spec: ModelSpec, source=None, seed: int = 0, dtype=torch.float64):
    sampler = MaskSampler(seed)
    sampler.source = source
    model = DropoutLSTMModel(spec, sampler).to(dtype)
    load_weights(model, initial_weights(spec, seed))
    return model


def batch(spec: ModelSpec, seed: int = 1, b: int = B, t: int = T):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, (b, t))
    y = rng.integers(0, spec.num_outputs, (b, t) if spec.task_kind is LM else (b,))
    return x, y


def is_gru(spec: ModelSpec) -> bool:
    return str(getattr(spec.cell, "value", spec.cell)) == "gru"


def grads_by_name(model: DropoutLSTMModel, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Gradients under the contract's names. LSTM: bias_hh is frozen at 0 (one bias); GRU: both
    biases train."""
    g = {"embedding": model.embedding.weight.grad, "decoder.bias": model.decoder.bias.grad}
    if not spec.tie_weights:
        g["decoder.weight"] = model.decoder.weight.grad
    for k in range(spec.num_layers):
        w_ih, w_hh, b_ih, b_hh = model.rnn_params(k)
        g |= {f"rnn.{k}.w_ih": w_ih.grad, f"rnn.{k}.w_hh": w_hh.grad, f"rnn.{k}.bias": b_ih.grad}
        if is_gru(spec):
            assert b_hh.requires_grad
            g[f"rnn.{k}.bias_hh"] = b_hh.grad
        else:
            assert b_hh.grad is None and not b_hh.requires_grad and not b_hh.any()
    return g


def expected_masks(spec: ModelSpec, b: int = B, t: int = T) -> list[tuple]:
    """The contract's masks of one training forward, (name, shape, rate), written out by hand."""
    v, g = spec.variant.value, 3 if is_gru(spec) else 4
    e, h, voc = spec.embed_size, spec.hidden_size, spec.vocab_size
    bm = 1 if spec.granularity.value == "batch" else b
    naive_out = v == "naive" or (spec.output_mode.value == "naive" and v in (*GAL, "semeniuta"))
    out = []
    if spec.embedding_dropout:
        out.append(("embedding", (voc, 1), spec.embedding_dropout))
    for k in range(spec.num_layers):
        d = e if k == 0 else h
        if spec.input_dropout:
            shape = {"naive": (b, t, d), "keras_impl0": (g, bm, d), "keras_impl1": (g, bm, d),
                     "keras_impl2": (bm, d)}.get(v, (bm, 1, d))
            out.append((f"input.{k}", shape, spec.input_dropout))
        if spec.recurrent_dropout and v in GAL:
            out.append((f"recurrent.{k}", (bm, h) if v == "keras_impl2" else (g, bm, h),
                        spec.recurrent_dropout))
        if spec.recurrent_dropout and v == "semeniuta":
            out.append((f"candidate.{k}", (bm, t if spec.per_step else 1, h),
                        spec.recurrent_dropout))
        if spec.weight_dropout:
            shape = {"weightdrop": (g * h, h), "weightdrop_variational": (g * h, 1),
                     "weightdrop_column": (1, h), "weightdrop_column_untied": (g, 1, h)}[v]
            out.append((f"weight.{k}", shape, spec.weight_dropout))
        for which in ("cell", "hidden"):
            p = getattr(spec, f"zoneout_{which}_dropout", 0.0)
            if p:
                out.append((f"zoneout_{which}.{k}", (b, t, h), p))
    if spec.output_dropout:
        if spec.task_kind is LM:
            out.append(("output", (b, t, h) if naive_out else (bm, 1, h), spec.output_dropout))
        else:
            out.append(("output", (b, h) if naive_out else (bm, h), spec.output_dropout))
    return out


def check_against_reference(spec: ModelSpec) -> None:
    source = NumpyMaskSource(seed=7)
    model = make_model(spec, source)
    x, y = batch(spec)
    rng = np.random.default_rng(3)
    h0 = torch.tensor(rng.normal(size=(L, B, H)) * 0.5)
    c0 = torch.tensor(rng.normal(size=(L, B, H)) * 0.5)
    logits, state = model(torch.as_tensor(x), (h0, c0))
    ref_loss(logits, y).backward()

    assert source.calls == expected_masks(spec)
    masks = as_masks([n for n, _, _ in source.calls], source.drawn)
    p = as_params(initial_weights(spec, 0))
    ref_logits, (hs, cs) = ref_forward(spec, p, masks, x, (h0, None if is_gru(spec) else c0))
    ref_loss(ref_logits, y).backward()

    torch.testing.assert_close(logits, ref_logits, atol=1e-10, rtol=0)
    torch.testing.assert_close(state[0], torch.stack(hs), atol=1e-10, rtol=0)
    if not is_gru(spec):
        torch.testing.assert_close(state[1], torch.stack(cs), atol=1e-10, rtol=0)
    grads = grads_by_name(model, spec)
    assert set(grads) == set(p)
    for name, ref in p.items():
        torch.testing.assert_close(grads[name], ref.grad, atol=1e-10, rtol=0, msg=name)
    assert max(float(g.abs().max()) for g in grads.values()) > 1e-3  # not vacuous


CASES = [(v, task, "gru", {}) for v in GRU_VARIANTS for task in (LM, CLS)]
CASES += [("semeniuta", task, "lstm", {}) for task in (LM, CLS)]
CASES += [("zoneout", task, "lstm", {}) for task in (LM, CLS)]
CASES += [("semeniuta", LM, cell, {"per_step": True}) for cell in ("lstm", "gru")]
CASES += [("semeniuta", task, cell, {"granularity": "batch"}) for cell in ("lstm", "gru")
          for task in (LM, CLS)]
CASES += [("semeniuta", LM, "gru", {"granularity": "batch", "per_step": True}),
          ("semeniuta", LM, "lstm", {"output_mode": "naive"}),
          ("semeniuta", CLS, "gru", {"output_mode": "naive"})]
CASES += [("zoneout", LM, "lstm", {"rates": {"zoneout_cell": 0.5}}),
          ("zoneout", LM, "lstm", {"rates": {"zoneout_hidden": 0.75}})]
CASES += [(v, LM, "gru", {"granularity": "batch"}) for v in ("keras_impl0", "keras_impl2",
                                                               "locked")]
CASES += [("keras_impl1", LM, "gru", {"output_mode": "naive"})]
CASES += [(v, LM, "gru", {"tie_weights": True, "embed_size": H})
          for v in ("naive", "weightdrop", "semeniuta")]


def _id(case) -> str:
    v, task, cell, kw = case
    extra = "-".join(f"{k}={val}" for k, val in kw.items() if k not in ("embed_size",))
    return "-".join(filter(None, [v, task.value, cell, extra.replace(" ", "")]))


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_forward_state_masks_and_gradients_equal_reference(case):
    variant, task, cell, kw = case
    kw = dict(kw)
    check_against_reference(make_spec(variant, task, cell, rates=kw.pop("rates", None), **kw))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weight_names_shapes_and_round_trip(cell):
    """rnn.{k}.w_ih (G*H, D_k), w_hh (G*H, H), bias (G*H,); a GRU adds bias_hh (G*H,), kept
    apart from bias (it sits inside the reset product), and both train."""
    spec = make_spec("none", LM, cell)
    g = 3 if cell == "gru" else 4
    want = {"embedding": (V, E), "decoder.weight": (V, H), "decoder.bias": (V,)}
    for k in range(L):
        d = E if k == 0 else H
        want |= {f"rnn.{k}.w_ih": (g * H, d), f"rnn.{k}.w_hh": (g * H, H),
                 f"rnn.{k}.bias": (g * H,)}
        if cell == "gru":
            want[f"rnn.{k}.bias_hh"] = (g * H,)
    assert weight_shapes(spec) == want
    w = initial_weights(spec, 5)
    assert {n: a.shape for n, a in w.items()} == want
    model = make_model(spec, seed=5, dtype=torch.float32)
    out = export_weights(model)
    assert set(out) == set(w)
    for name in w:
        np.testing.assert_array_equal(out[name], w[name], err_msg=name)
    runner = Runner(spec, OptimSpec("sgd"), seed=5)
    x, y = batch(spec)
    runner.train_epoch([Batch(x, y)], 1.0)
    after = runner.export_weights()
    for name in ("rnn.0.bias", "rnn.1.bias", *(["rnn.0.bias_hh"] if cell == "gru" else [])):
        assert not np.array_equal(after[name], w[name]), f"{name} did not train"
    if cell == "gru":
        bad = {k: a for k, a in w.items() if k != "rnn.1.bias_hh"}
        with pytest.raises(ValueError, match="rnn.1.bias_hh"):
            runner.load_weights(bad)


def test_gru_reference_agrees_with_the_backend_without_dropout_to_float32():
    """The plain GRU in float32 (what training runs) matches the float64 reference."""
    spec = make_spec("none", CLS, "gru")
    model = make_model(spec, seed=2, dtype=torch.float32)
    x, _ = batch(spec)
    with torch.no_grad():
        logits, (h, _) = model(torch.as_tensor(x))
    ref, (hs, _) = ref_forward(spec, as_params(initial_weights(spec, 2)), {}, x)
    torch.testing.assert_close(logits.double(), ref.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.double(), torch.stack(hs).detach(), atol=1e-5, rtol=0)


MASK_CASES = [("semeniuta", "lstm", {}), ("semeniuta", "gru", {"per_step": True}),
              ("semeniuta", "lstm", {"granularity": "batch", "per_step": True}),
              ("semeniuta", "gru", {"output_mode": "naive"}),
              ("zoneout", "lstm", {}), ("zoneout", "gru", {}),
              *[(v, "gru", {}) for v in GRU_VARIANTS if v not in ("none",)]]


@pytest.mark.parametrize("variant,cell,kw", MASK_CASES,
                         ids=[f"{v}-{c}-{'-'.join(map(str, k.values()))}" for v, c, k in
                              MASK_CASES])
def test_mask_names_shapes_rates_and_order(variant, cell, kw):
    """The sampler sees exactly the contract's draws, once per forward; mask_plan agrees for
    training and MC; standard evaluation draws nothing (except eval_active)."""
    for task in (LM, CLS):
        spec = make_spec(variant, task, cell, **kw)
        model = make_model(spec, dtype=torch.float32)
        x = torch.as_tensor(batch(spec)[0])
        model(x)
        assert model.sampler.calls == expected_masks(spec)
        assert [tuple(r) for r in mask_plan(spec, B, T, "train")] == expected_masks(spec)
        assert [tuple(r) for r in mask_plan(spec, B, T, "mc")] == expected_masks(spec)
        assert mask_plan(spec, B, T, "eval") == []
        model.sampler.calls.clear()
        model(x)
        assert len(model.sampler.calls) == len(expected_masks(spec))
        model.sampler.calls.clear()
        model.eval()
        with torch.no_grad():
            model(x)
        assert model.sampler.calls == []


def test_gru_eval_active_row_mask_has_three_gate_blocks():
    spec = make_spec("weightdrop_variational", LM, "gru", eval_active=True)
    source = NumpyMaskSource(seed=3)
    model = make_model(spec, source).eval()
    x = batch(spec)[0]
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(x))
    assert source.calls == [("weight.0", (3 * H, 1), 0.5), ("weight.1", (3 * H, 1), 0.5)]
    masks = as_masks([n for n, _, _ in source.calls], source.drawn)
    ref, _ = ref_forward(spec, as_params(initial_weights(spec, 0)), masks, x)
    torch.testing.assert_close(logits, ref.detach(), atol=1e-10, rtol=0)


class Spy:
    """Wraps a sampler's own draw to keep every mask it returns."""

    def __init__(self, sampler: MaskSampler):
        self.draw, self.masks = sampler.draw, []
        sampler.draw = self  # type: ignore[method-assign]

    def __call__(self, name, shape, rate, **options):
        mask = self.draw(name, shape, rate, **options)
        self.masks.append((name, rate, mask.clone()))
        return mask


@pytest.mark.parametrize("variant,cell,kw", [("semeniuta", "lstm", {}),
                                             ("semeniuta", "gru", {"per_step": True}),
                                             ("zoneout", "lstm", {}), ("zoneout", "gru", {})])
def test_own_masks_values_time_structure_and_redraw(variant, cell, kw):
    """The sampler's own masks: values 0 or 1/(1-p), some of each; zoneout and per_step
    candidate masks change from step to step (a fresh mask per unit, sample and step); every
    mask is redrawn on the next call; the model used exactly those masks."""
    spec = make_spec(variant, LM, cell, hidden_size=16, embed_size=16, **kw)
    model = make_model(spec, seed=11)
    spy = Spy(model.sampler)
    x, _ = batch(spec)
    logits, _ = model(torch.as_tensor(x))
    first = list(spy.masks)
    assert [n for n, _, _ in first] == [n for n, _, _ in expected_masks(spec)]
    for name, rate, mask in first:
        scale = float(np.float32(1) / np.float32(1 - rate))
        assert set(torch.unique(mask).tolist()) <= {0.0, scale}, name
        assert 0 < (mask == 0).double().mean() < 1, name
        if name.startswith("zoneout") or (name.startswith("candidate") and spec.per_step):
            assert mask.shape[1] == T
            assert not all(torch.equal(mask[:, 0], mask[:, t]) for t in range(1, T)), name
    masks = {name: m for name, _, m in first}
    ref, _ = ref_forward(spec, as_params(initial_weights(spec, 11)), masks, x)
    torch.testing.assert_close(logits, ref, atol=1e-10, rtol=0)
    model(torch.as_tensor(x))
    second = spy.masks[len(first):]
    assert [n for n, _, _ in second] == [n for n, _, _ in first]
    for (name, _, a), (_, _, b) in zip(first, second, strict=True):
        assert not torch.equal(a, b), f"{name} was not redrawn on the next call"


def _fixed(spec: ModelSpec, value_of) -> NumpyMaskSource:
    return NumpyMaskSource(fixed={n: np.full(s, value_of(n, r), np.float32)
                                  for n, s, r in expected_masks(spec)})


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zoneout_extremes(cell):
    """Masks that keep every entry (1/(1-p)) take every update: the plain cell, no 1/(1-p)
    scaling of the state. Masks that drop every entry keep every previous value: the state
    never leaves h0 (c0), so the LM's logits are the decoder of h0 at every step."""
    spec = make_spec("zoneout", LM, cell)
    none = make_spec("none", LM, cell)
    x, _ = batch(spec)
    rng = np.random.default_rng(4)
    h0 = torch.tensor(rng.normal(size=(L, B, H)) * 0.5)
    c0 = torch.tensor(rng.normal(size=(L, B, H)) * 0.5)
    plain, (hp, cp) = make_model(none, seed=3)(torch.as_tensor(x), (h0, c0))
    model = make_model(spec, _fixed(spec, lambda n, r: 1 / (1 - r)), seed=3)
    got, (h, c) = model(torch.as_tensor(x), (h0, c0))
    torch.testing.assert_close(got, plain, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, hp, atol=1e-12, rtol=0)
    model = make_model(spec, _fixed(spec, lambda n, r: 0.0), seed=3)
    got, (h, c) = model(torch.as_tensor(x), (h0, c0))
    torch.testing.assert_close(h, h0, atol=0, rtol=0)
    if cell == "lstm":
        torch.testing.assert_close(c, c0, atol=0, rtol=0)
    dec = model.decoder
    torch.testing.assert_close(got, dec(h0[-1])[:, None].expand(B, T, V), atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zoneout_with_an_inexact_rate_keeps_exactly_and_updates_closely(cell):
    """p = 0.3 (1/(1-p) inexact in float32): a kept unit is exactly its previous value; the
    whole forward matches the reference to float rounding."""
    rates = {"zoneout_cell": 0.3, "zoneout_hidden": 0.3}
    spec = make_spec("zoneout", LM, cell, rates=rates, num_layers=1)
    source = NumpyMaskSource(seed=9)
    model = make_model(spec, source, seed=6)
    x, _ = batch(spec, t=1)
    h0 = torch.tensor(np.random.default_rng(5).normal(size=(1, B, H)))
    logits, (h, c) = model(torch.as_tensor(x), (h0, h0 * 0.5))
    masks = as_masks([n for n, _, _ in source.calls], source.drawn)
    kept = masks["zoneout_hidden.0"][:, 0] == 0
    assert 0 < kept.double().mean() < 1
    torch.testing.assert_close(h[0][kept], h0[0][kept], atol=0, rtol=0)
    if cell == "lstm":
        kept_c = masks["zoneout_cell.0"][:, 0] == 0
        torch.testing.assert_close(c[0][kept_c], (h0 * 0.5)[0][kept_c], atol=0, rtol=0)
    ref, (hs, _) = ref_forward(spec, as_params(initial_weights(spec, 6)), masks, x,
                               (h0, h0 * 0.5))
    torch.testing.assert_close(logits, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(h, torch.stack(hs), atol=1e-6, rtol=0)


@pytest.mark.parametrize("task", [LM, CLS], ids=lambda t: t.value)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_evaluation(cell, task):
    """Standard evaluation: semeniuta is the plain cell (= `none` with the same weights);
    zoneout is c_t = p_c c_{t-1} + (1-p_c) c~_t, h_t = p_h h_{t-1} + (1-p_h) h~_t; neither
    draws a mask."""
    x, _ = batch(make_spec("none", task, cell))
    outs = {}
    for variant in ("none", "semeniuta", "zoneout"):
        spec = make_spec(variant, task, cell)
        model = make_model(spec, seed=4).eval()
        with torch.no_grad():
            outs[variant] = model(torch.as_tensor(x))[0]
        assert model.sampler.calls == []
        ref, _ = ref_forward(spec, as_params(initial_weights(spec, 4)), {}, x,
                             deterministic=True)
        torch.testing.assert_close(outs[variant], ref.detach(), atol=1e-10, rtol=0)
    torch.testing.assert_close(outs["semeniuta"], outs["none"], atol=1e-12, rtol=0)
    assert not torch.allclose(outs["zoneout"], outs["none"])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_runner_mc_and_standard_predictions_for_zoneout(cell):
    """Through the Runner (float32): an MC pass draws the training masks (from the evaluation
    stream) and matches the reference under them; standard evaluation draws nothing and is the
    deterministic mix. The LM state is carried across the batches of one call."""
    spec = make_spec("zoneout", LM, cell)
    runner = Runner(spec, OptimSpec(), seed=3)
    source = NumpyMaskSource(seed=12)
    runner.sampler.source = source
    data = [Batch(*batch(spec, seed=s)) for s in (1, 2)]
    got = runner.predict(data, stochastic=True)
    per_call = expected_masks(spec)
    assert source.calls == per_call * 2
    p = as_params(initial_weights(spec, 3))
    state, want = None, []
    for i, b in enumerate(data):
        chunk = source.drawn[i * len(per_call):(i + 1) * len(per_call)]
        masks = as_masks([n for n, _, _ in per_call], chunk)
        logits, (hs, cs) = ref_forward(spec, p, masks, b.x, state)
        state = (hs, None if cell == "gru" else cs)
        logp = torch.log_softmax(logits, -1)
        want.append(logp.gather(-1, torch.as_tensor(b.y)[..., None]).exp().reshape(-1))
    np.testing.assert_allclose(got, torch.cat(want).detach().numpy(), atol=1e-5, rtol=0)
    n = len(source.calls)
    det = runner.predict(data, stochastic=False)
    assert len(source.calls) == n
    state, want = None, []
    for b in data:
        logits, (hs, cs) = ref_forward(spec, p, {}, b.x, state, deterministic=True)
        state = (hs, None if cell == "gru" else cs)
        logp = torch.log_softmax(logits, -1)
        want.append(logp.gather(-1, torch.as_tensor(b.y)[..., None]).exp().reshape(-1))
    np.testing.assert_allclose(det, torch.cat(want).detach().numpy(), atol=1e-5, rtol=0)


def test_zero_rates_are_the_plain_cell():
    """p = 0 everywhere: no draw and the `none` numbers, for both cells and both new variants."""
    for cell in ("lstm", "gru"):
        x = batch(make_spec("none", LM, cell))[0]
        none = make_model(make_spec("none", LM, cell), seed=4)(torch.as_tensor(x))[0]
        for variant in ("semeniuta", "zoneout", *GRU_VARIANTS):
            if cell == "lstm" and variant not in ("semeniuta", "zoneout"):
                continue
            model = make_model(make_spec(variant, LM, cell, rates={}), seed=4)
            got = model(torch.as_tensor(x))[0]
            assert model.sampler.calls == []
            torch.testing.assert_close(got, none, atol=1e-12, rtol=0, msg=variant)


@pytest.mark.parametrize("kw,words", [
    ({"variant": "zoneout", "cell": "gru", "zoneout_cell_dropout": 0.2},
     ("model.cell=gru", "dropout.zoneout_cell")),
    ({"variant": "torch_builtin", "cell": "gru", "num_layers": 2}, ("gru", "torch_builtin")),
    ({"variant": "keras3_builtin", "cell": "gru"}, ("gru", "keras3_builtin")),
    ({"variant": "keras_impl2", "per_step": True}, ("per_step",)),
    ({"variant": "locked", "per_step": True, "cell": "gru"}, ("per_step",)),
    ({"variant": "zoneout", "input_dropout": 0.2}, ("dropout.input", "zoneout")),
    ({"variant": "zoneout", "output_dropout": 0.2, "cell": "gru"}, ("dropout.output",)),
    ({"variant": "semeniuta", "weight_dropout": 0.2}, ("dropout.weight", "semeniuta")),
    ({"variant": "semeniuta", "zoneout_hidden_dropout": 0.2}, ("dropout.zoneout_hidden",)),
    ({"variant": "keras_impl0", "zoneout_cell_dropout": 0.2}, ("dropout.zoneout_cell",)),
    ({"variant": "zoneout", "zoneout_hidden_dropout": 1.0}, ("dropout.zoneout_hidden",)),
    ({"variant": "zoneout", "granularity": "batch"}, ("granularity",)),
    ({"variant": "none", "cell": "rnn"}, ("cell",)),
])
def test_refusals(kw, words):
    base = dict(task_kind=LM, vocab_size=V, num_outputs=V, embed_size=E, hidden_size=H,
                num_layers=1)
    with pytest.raises(SpecError) as err:
        ModelSpec(**{**base, **kw})
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_what_the_contract_accepts():
    """The positive side of the refusals: these build (and run one forward)."""
    for kw in ({"variant": "zoneout", "cell": "gru", "zoneout_hidden_dropout": 0.2},
               {"variant": "zoneout", "zoneout_cell_dropout": 0.2},
               {"variant": "semeniuta", "per_step": True, "granularity": "batch",
                "output_mode": "naive", "recurrent_dropout": 0.3, "cell": "gru"},
               {"variant": "weightdrop_column_untied", "cell": "gru", "weight_dropout": 0.3},
               {"variant": "torch_builtin", "cell": "lstm"}):
        spec = ModelSpec(task_kind=LM, vocab_size=V, num_outputs=V, embed_size=E,
                         hidden_size=H, num_layers=2, **kw)
        model = make_model(spec, dtype=torch.float32)
        logits, _ = model(torch.as_tensor(batch(spec)[0]))
        assert logits.shape == (B, T, V) and torch.isfinite(logits).all()
