"""The Keras backend's GRU cell and the cell-level variants (semeniuta, zoneout) against the
independent numpy reference (tests/support/keras_reference.py), with masks injected through the
sampler: MC and standard predictions, mask names/shapes/rates/order, fresh draws per call,
training loss and gradients, exported weights, zero rates and refusals.

Zoneout rates are 0.5 and 0.75 where exactness matters (1/(1-p) exact in float32, so the
backend's u = m * (1 - p) is exactly 0 or 1); the Runner works in float32, so every comparison
allows 1e-5 as the existing Keras tests do."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from frameworks.base import NumpyMaskSource, initial_weights, weight_shapes
from frameworks.masks import mask_plan
from frameworks.spec import (
    FRAMEWORK_VARIANTS,
    Batch,
    ModelSpec,
    OptimSpec,
    SpecError,
    Variant,
    rates_used_by,
)
from tests.support.keras_reference import forward_ref, loss_ref, numeric_grad, target_probs_ref

pytestmark = pytest.mark.keras
Runner = pytest.importorskip("frameworks.keras_backend").Runner

V, E, H, B, T, C, L = 20, 5, 5, 3, 6, 3, 2
RATES = {"embedding": 0.2, "input": 0.3, "recurrent": 0.4, "output": 0.25, "weight": 0.5,
         "zoneout_cell": 0.5, "zoneout_hidden": 0.75}
GAL = ("keras_impl0", "keras_impl1", "keras_impl2")
GRU_VARIANTS = [v.value for v in Variant
                if v.value not in ("torch_builtin", "keras3_builtin")
                and v in FRAMEWORK_VARIANTS["keras"]]


def make_spec(variant: str, task: str = "lm", cell: str = "lstm", rates: dict | None = None,
              **kw) -> ModelSpec:
    used = rates_used_by(Variant(variant))
    chosen = {k: p for k, p in (RATES if rates is None else rates).items() if k in used}
    if cell == "gru":
        chosen.pop("zoneout_cell", None)
    return ModelSpec(task_kind=task, vocab_size=V, num_outputs=V if task == "lm" else C,
                     embed_size=E, hidden_size=H, num_layers=L, variant=variant, cell=cell,
                     init_scale=0.5, **{f"{k}_dropout": p for k, p in chosen.items()}, **kw)


def make_batches(task: str, n: int = 2, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.integers(1, V, (B, T))
        if task == "lm":
            out.append(Batch(x, rng.integers(0, V, (B, T))))
        else:
            x[0, :2] = 0  # pre-padding
            out.append(Batch(x, rng.integers(0, C, (B,))))
    return out


def is_gru(spec: ModelSpec) -> bool:
    return str(getattr(spec.cell, "value", spec.cell)) == "gru"


def expected_masks(spec: ModelSpec) -> list[tuple[str, tuple[int, ...], float]]:
    """The contract's draws of one forward call, written out by hand."""
    v, g = spec.variant.value, 3 if is_gru(spec) else 4
    bm = 1 if spec.granularity.value == "batch" else B
    naive_out = v == "naive" or (spec.output_mode.value == "naive" and v in (*GAL, "semeniuta"))
    out = []
    if spec.embedding_dropout:
        out.append(("embedding", (V, 1), spec.embedding_dropout))
    for k in range(spec.num_layers):
        d = E if k == 0 else H
        if spec.input_dropout:
            shape = {"naive": (B, T, d), "keras_impl0": (g, bm, d), "keras_impl1": (g, bm, d),
                     "keras_impl2": (bm, d)}.get(v, (bm, 1, d))
            out.append((f"input.{k}", shape, spec.input_dropout))
        if spec.recurrent_dropout and v in GAL:
            out.append((f"recurrent.{k}", (bm, H) if v == "keras_impl2" else (g, bm, H),
                        spec.recurrent_dropout))
        if spec.recurrent_dropout and v == "semeniuta":
            out.append((f"candidate.{k}", (bm, T if spec.per_step else 1, H),
                        spec.recurrent_dropout))
        if spec.weight_dropout:
            shape = {"weightdrop": (g * H, H), "weightdrop_variational": (g * H, 1),
                     "weightdrop_column": (1, H), "weightdrop_column_untied": (g, 1, H)}[v]
            out.append((f"weight.{k}", shape, spec.weight_dropout))
        for which in ("cell", "hidden"):
            p = getattr(spec, f"zoneout_{which}_dropout", 0.0)
            if p:
                out.append((f"zoneout_{which}.{k}", (B, T, H), p))
    if spec.output_dropout:
        if spec.task_kind.value == "lm":
            out.append(("output", (B, T, H) if naive_out else (bm, 1, H), spec.output_dropout))
        else:
            out.append(("output", (B, H) if naive_out else (bm, H), spec.output_dropout))
    return out


def split_calls(source: NumpyMaskSource, per_call: int) -> list[dict[str, np.ndarray]]:
    names = [c[0] for c in source.calls]
    if per_call == 0:
        return [{}, {}]
    return [dict(zip(names[i:i + per_call], source.drawn[i:i + per_call], strict=True))
            for i in range(0, len(names), per_call)]


def reference_predictions(spec, weights, batches, masks_per_batch, deterministic=False):
    outs, states = [], None
    for batch, masks in zip(batches, masks_per_batch, strict=True):
        probs, new_states = target_probs_ref(spec, weights, batch.x, batch.y, masks, states,
                                             deterministic)
        states = new_states if spec.task_kind.value == "lm" else None
        outs.append(probs)
    return np.concatenate(outs)


@functools.cache
def none_predictions(task: str, cell: str) -> np.ndarray:
    spec = make_spec("none", task, cell)
    return Runner(spec, OptimSpec(), seed=3).predict(make_batches(task), False)


CASES = [(v, task, "gru", {}) for v in GRU_VARIANTS if v != "none" for task in ("lm", "classifier")]
CASES += [(v, task, "lstm", {}) for v in ("semeniuta", "zoneout") for task in ("lm", "classifier")]
CASES += [("semeniuta", "lm", cell, {"per_step": True}) for cell in ("lstm", "gru")]
CASES += [("semeniuta", "lm", "gru", {"granularity": "batch"}),
          ("semeniuta", "classifier", "lstm", {"granularity": "batch", "output_mode": "naive"}),
          ("semeniuta", "lm", "lstm", {"output_mode": "naive", "per_step": True}),
          ("keras_impl0", "lm", "gru", {"granularity": "batch"}),
          ("keras_impl2", "classifier", "gru", {"output_mode": "naive"}),
          ("locked", "lm", "gru", {"granularity": "batch"}),
          ("zoneout", "lm", "lstm", {"rates": {"zoneout_cell": 0.5}})]


def _id(case) -> str:
    v, task, cell, kw = case
    return "-".join(filter(None, [v, task, cell, "-".join(f"{k}={val}" for k, val in kw.items())
                                  .replace(" ", "")]))


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_stochastic_and_standard_predictions_match_numpy(case):
    variant, task, cell, kw = case
    kw = dict(kw)
    spec = make_spec(variant, task, cell, rates=kw.pop("rates", None), **kw)
    runner = Runner(spec, OptimSpec(), seed=3)
    source = NumpyMaskSource(seed=11)
    runner.sampler.source = source
    batches = make_batches(task)
    got = runner.predict(batches, stochastic=True)

    expected = expected_masks(spec)
    assert source.calls == expected * len(batches)
    assert [tuple(r) for r in mask_plan(spec, B, T, "mc")] == expected
    masks = split_calls(source, len(expected))
    for name, shape, _ in expected:  # a fresh draw for every forward call
        if np.prod(shape) >= 15:
            assert not np.array_equal(masks[0][name], masks[1][name]), name
    weights = runner.export_weights()
    np.testing.assert_allclose(got, reference_predictions(spec, weights, batches, masks),
                               atol=1e-5, rtol=0)
    stale = reference_predictions(spec, weights, batches, [masks[0], masks[0]])
    assert np.abs(got - stale).max() > 1e-4  # negative control: the masks matter

    n_calls = len(source.calls)
    deterministic = runner.predict(batches, stochastic=False)
    assert len(source.calls) == n_calls  # standard evaluation draws nothing
    want = reference_predictions(spec, weights, batches, [{}, {}], deterministic=True)
    np.testing.assert_allclose(deterministic, want, atol=1e-5, rtol=0)
    if variant == "zoneout":
        assert np.abs(deterministic - none_predictions(task, cell)).max() > 1e-4
    else:  # everything else evaluates as the plain network
        np.testing.assert_allclose(deterministic, none_predictions(task, cell), atol=1e-6)


GRAD_CASES = [("keras_impl0", "lm", "gru"), ("keras_impl2", "classifier", "gru"),
              ("weightdrop_column_untied", "lm", "gru"), ("naive", "classifier", "gru"),
              ("semeniuta", "lm", "lstm"), ("semeniuta", "lm", "gru"),
              ("zoneout", "lm", "lstm"), ("zoneout", "classifier", "gru")]


@pytest.mark.parametrize(("variant", "task", "cell"), GRAD_CASES)
def test_training_loss_and_gradients_match_numpy(variant, task, cell):
    """One SGD step with lr=1: the loss is the numpy loss under the same masks, and
    w_before - w_after is its finite-difference gradient (bias_hh included for a GRU)."""
    spec = make_spec(variant, task, cell)
    runner = Runner(spec, OptimSpec("sgd"), seed=4)
    source = NumpyMaskSource(seed=2)
    runner.sampler.source = source
    before = runner.export_weights()
    batch = make_batches(task, n=1, seed=9)[0]
    loss = runner.train_epoch([batch], lr=1.0)
    after = runner.export_weights()
    assert source.calls == expected_masks(spec)
    masks = split_calls(source, len(expected_masks(spec)))[0]
    assert loss == pytest.approx(loss_ref(spec, before, batch.x, batch.y, masks), abs=1e-5)
    rng = np.random.default_rng(0)
    coords = [(name, int(i)) for name in sorted(before)
              for i in rng.choice(before[name].size, size=min(12, before[name].size),
                                  replace=False)]
    assert not is_gru(spec) or any(n.endswith("bias_hh") for n, _ in coords)
    want = numeric_grad(spec, before, batch.x, batch.y, masks, coords)
    got = np.array([before[n].flat[i] - after[n].flat[i] for n, i in coords])
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-3)
    assert np.abs(want).max() > 1e-3


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weights_round_trip_with_the_contract_shapes(cell):
    spec = make_spec("none", "lm", cell)
    g = 3 if cell == "gru" else 4
    w = initial_weights(spec, 8)
    for k in range(L):
        d = E if k == 0 else H
        assert w[f"rnn.{k}.w_ih"].shape == (g * H, d)
        assert w[f"rnn.{k}.w_hh"].shape == (g * H, H)
        assert w[f"rnn.{k}.bias"].shape == (g * H,)
        assert (f"rnn.{k}.bias_hh" in w) == (cell == "gru")
    assert set(weight_shapes(spec)) == set(w)
    runner = Runner(spec, OptimSpec(), seed=8)
    out = runner.export_weights()
    assert set(out) == set(w)
    for name in w:
        np.testing.assert_array_equal(out[name], w[name], err_msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zoneout_extremes(cell):
    """All-keep masks (1/(1-p)) take every update: the plain cell. All-drop masks keep every
    previous value: the state stays at zero, so every LM prediction is softmax(decoder.bias)."""
    spec = make_spec("zoneout", "lm", cell)
    batches = make_batches("lm")
    runner = Runner(spec, OptimSpec(), seed=3)
    runner.sampler.source = NumpyMaskSource(fixed={
        n: np.full(s, 1 / (1 - r), np.float32) for n, s, r in expected_masks(spec)})
    np.testing.assert_allclose(runner.predict(batches, stochastic=True),
                               none_predictions("lm", cell), atol=1e-6)
    runner.sampler.source = NumpyMaskSource(fixed={
        n: np.zeros(s, np.float32) for n, s, _ in expected_masks(spec)})
    got = runner.predict(batches, stochastic=True)
    bias = runner.export_weights()["decoder.bias"].astype(np.float64)
    p = np.exp(bias - bias.max()) / np.exp(bias - bias.max()).sum()
    want = np.concatenate([p[b.y.reshape(-1)] for b in batches])
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_zoneout_inexact_rate_matches_reference(cell):
    spec = make_spec("zoneout", "lm", cell, rates={"zoneout_cell": 0.3, "zoneout_hidden": 0.2})
    runner = Runner(spec, OptimSpec(), seed=5)
    source = NumpyMaskSource(seed=4)
    runner.sampler.source = source
    batches = make_batches("lm")
    got = runner.predict(batches, stochastic=True)
    masks = split_calls(source, len(expected_masks(spec)))
    np.testing.assert_allclose(got, reference_predictions(spec, runner.export_weights(),
                                                          batches, masks), atol=1e-5)


@pytest.mark.parametrize("task", ["lm", "classifier"])
def test_zero_rates_are_exactly_none(task):
    """p == 0: no draw, and the numbers of `none` for the same cell."""
    batches = make_batches(task)
    for cell, variants in (("gru", GRU_VARIANTS), ("lstm", ["semeniuta", "zoneout"])):
        base = none_predictions(task, cell)
        for variant in variants:
            runner = Runner(make_spec(variant, task, cell, rates={}), OptimSpec(), seed=3)
            got = runner.predict(batches, stochastic=True)
            assert runner.sampler.calls == []
            np.testing.assert_allclose(got, base, atol=1e-6, err_msg=f"{variant}-{cell}")


@pytest.mark.parametrize("kw", [{"variant": "keras3_builtin", "cell": "gru"},
                                {"variant": "zoneout", "cell": "gru",
                                 "zoneout_cell_dropout": 0.1}])
def test_refused_before_a_runner_is_built(kw):
    with pytest.raises(SpecError, match="gru"):
        ModelSpec(task_kind="lm", vocab_size=V, num_outputs=V, embed_size=E, hidden_size=H,
                  num_layers=1, **kw)


def test_forward_reference_differs_between_cells():
    """Sanity of the fixtures: the same shapes with another cell give other numbers."""
    x = make_batches("lm", n=1)[0].x
    lstm, gru = make_spec("none", "lm", "lstm"), make_spec("none", "lm", "gru")
    a = forward_ref(lstm, initial_weights(lstm, 0), x, {})[0]
    b = forward_ref(gru, initial_weights(gru, 0), x, {})[0]
    assert np.abs(a - b).max() > 1e-3
