"""Every Keras variant against the independent numpy model, with masks injected through the
sampler: outputs, mask names/shapes/order, per-gate masks, time-constant masks redrawn per call,
loss and gradients, evaluation = no dropout, zero rates = `none`."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from frameworks import variants
from frameworks.base import NumpyMaskSource
from frameworks.compute import Compute
from frameworks.spec import Batch, ModelSpec, OptimSpec, Variant, rates_used_by
from tests.support.keras_reference import forward_ref, loss_ref, numeric_grad, target_probs_ref

pytestmark = pytest.mark.keras
Runner = pytest.importorskip("frameworks.keras_backend").Runner

V, E, H, B, T, C = 20, 5, 5, 3, 6, 3
RATES = {"embedding": 0.2, "input": 0.3, "recurrent": 0.4, "output": 0.25, "weight": 0.5}
# the cell-level variants (semeniuta, zoneout) have their own reference tests:
# test_gru_semeniuta_zoneout.py
CUSTOM = [v for v in Variant if v not in (Variant.TORCH_BUILTIN, Variant.KERAS3_BUILTIN)
          and "cell" not in variants.entry(v).groups]
GAL = ("keras_impl0", "keras_impl1", "keras_impl2")
NAIVE_OUT = ("naive",)


def make_spec(variant, task="lm", zero=False, **kw) -> ModelSpec:
    variant = Variant(variant)
    rates = {} if zero else {f"{n}_dropout": RATES[n] for n in rates_used_by(variant)}
    return ModelSpec(task_kind=task, vocab_size=V, num_outputs=V if task == "lm" else C,
                     embed_size=E, hidden_size=H, num_layers=2, variant=variant,
                     init_scale=0.5, **{**rates, **kw})


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


def expected_masks(spec: ModelSpec) -> list[tuple[str, tuple[int, ...]]]:
    """The contract's mask list for one forward call, written out from frameworks/base.py."""
    v, bm = spec.variant.value, (1 if spec.granularity.value == "batch" else B)
    naive_out = v == "naive" or (v in GAL and spec.output_mode.value == "naive")
    out = []
    if spec.embedding_dropout:
        out.append(("embedding", (V, 1)))
    for k in range(spec.num_layers):
        d = E if k == 0 else H
        if spec.input_dropout:
            shape = {"naive": (B, T, d), "keras_impl0": (4, bm, d), "keras_impl1": (4, bm, d),
                     "keras_impl2": (bm, d)}.get(v, (bm, 1, d))
            out.append((f"input.{k}", shape))
        if spec.recurrent_dropout:
            out.append((f"recurrent.{k}", (bm, H) if v == "keras_impl2" else (4, bm, H)))
        if spec.weight_dropout:
            out.append((f"weight.{k}", {"weightdrop": (4 * H, H),
                                        "weightdrop_variational": (4 * H, 1),
                                        "weightdrop_column": (1, H),
                                        "weightdrop_column_untied": (4, 1, H)}[v]))
    if spec.output_dropout:
        if spec.task_kind.value == "lm":
            out.append(("output", (B, T, H) if naive_out else (bm, 1, H)))
        else:
            out.append(("output", (B, H) if naive_out else (bm, H)))
    return out


def split_calls(source: NumpyMaskSource, per_call: int) -> list[dict[str, np.ndarray]]:
    names = [c[0] for c in source.calls]
    if per_call == 0:
        return [{}]
    return [dict(zip(names[i:i + per_call], source.drawn[i:i + per_call], strict=True))
            for i in range(0, len(names), per_call)]


def reference_predictions(spec, weights, batches, masks_per_batch):
    outs, states = [], None
    for batch, masks in zip(batches, masks_per_batch, strict=True):
        probs, new_states = target_probs_ref(spec, weights, batch.x, batch.y, masks, states)
        states = new_states if spec.task_kind.value == "lm" else None
        outs.append(probs)
    return np.concatenate(outs)


@functools.cache
def none_predictions(task: str) -> np.ndarray:
    """Deterministic predictions of `none` with the weights every test runner starts from."""
    return Runner(make_spec("none", task), OptimSpec(), seed=3).predict(make_batches(task), False)


CASES = [(v.value, task, {}) for v in CUSTOM[1:] for task in ("lm", "classifier")] + [
    (v, "lm", {"granularity": "batch"}) for v in (*GAL, "locked")] + [
    (v, task, {"output_mode": "naive"}) for v in ("keras_impl0", "keras_impl2")
    for task in ("lm", "classifier")] + [
    ("keras_impl1", "classifier", {"granularity": "batch", "output_mode": "naive"})]


@pytest.mark.parametrize(("variant", "task", "knobs"), CASES,
                         ids=[f"{v}-{t}-{'-'.join(k.values()) or 'default'}" for v, t, k in CASES])
def test_stochastic_outputs_match_numpy(variant, task, knobs):
    spec = make_spec(variant, task, **knobs)
    runner = Runner(spec, OptimSpec(), seed=3)
    source = NumpyMaskSource(seed=11)
    runner.sampler.source = source
    batches = make_batches(task)
    got = runner.predict(batches, stochastic=True)

    expected = expected_masks(spec)
    assert [(n, s) for n, s, _ in source.calls] == expected * len(batches)
    assert runner.sampler.calls == source.calls
    masks = split_calls(source, len(expected))
    for name, shape in expected:  # a fresh draw for every forward call
        if np.prod(shape) >= 15:  # small masks repeat by chance (a (1, 5) one: 4%)
            assert not np.array_equal(masks[0][name], masks[1][name]), name
    weights = runner.export_weights()
    want = reference_predictions(spec, weights, batches, masks)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # Negative control: reusing the first call's masks for the second batch must not match.
    stale = reference_predictions(spec, weights, batches, [masks[0], masks[0]])
    assert np.abs(got - stale).max() > 1e-4
    # Standard evaluation: no draw, exactly the no-dropout network.
    n_calls = len(source.calls)
    deterministic = runner.predict(batches, stochastic=False)
    assert len(source.calls) == n_calls
    np.testing.assert_array_equal(deterministic, none_predictions(task))
    np.testing.assert_allclose(deterministic, reference_predictions(spec, weights, batches,
                                                                    [{}, {}]), atol=1e-5)


@pytest.mark.parametrize("variant", ["keras_impl0", "keras_impl1"])
def test_untied_variants_use_each_gates_own_mask(variant):
    spec = make_spec(variant)
    runner = Runner(spec, OptimSpec(), seed=0)
    source = NumpyMaskSource(seed=5)
    runner.sampler.source = source
    batch = make_batches("lm", n=1)
    got = runner.predict(batch, stochastic=True)
    masks = split_calls(source, len(expected_masks(spec)))[0]
    for k in range(spec.num_layers):
        for side in ("input", "recurrent"):
            m = masks[f"{side}.{k}"]
            assert not any(np.array_equal(m[0], m[g]) for g in (1, 2, 3)), f"{side}.{k}"
    weights = runner.export_weights()
    np.testing.assert_allclose(got, reference_predictions(spec, weights, batch, [masks]),
                               atol=1e-5)
    shared = {k: (m[[0, 0, 0, 0]] if k.split(".")[0] in ("input", "recurrent") else m)
              for k, m in masks.items()}
    assert np.abs(got - reference_predictions(spec, weights, batch, [shared])).max() > 1e-4


GRAD_CASES = [(v, "lm", True) for v in ("naive", "keras_impl0", "keras_impl1", "keras_impl2",
                                         "weightdrop", "weightdrop_variational",
                                         "weightdrop_column_untied", "locked")] + [
    ("keras_impl1", "classifier", False), ("weightdrop_column", "classifier", False)]


# The Gal family again on the path a machine without a compiler takes (the tf.function loop),
# since `auto` runs the compiled op wherever it is built.
GRAD_CASES = [(*case, "auto") for case in GRAD_CASES] + [
    (v, task, False, "bptt") for v in ("keras_impl0", "keras_impl1", "keras_impl2")
    for task in ("lm", "classifier")]


@pytest.mark.parametrize(("variant", "task", "tie", "loop"), GRAD_CASES)
def test_training_loss_and_gradients_match_numpy(variant, task, tie, loop):
    """One SGD step with lr=1: the returned loss is the numpy loss under the same masks, and
    w_before - w_after is the numpy loss's finite-difference gradient; the runner records the
    path it asked for."""
    spec = make_spec(variant, task, tie_weights=tie)
    runner = Runner(spec, OptimSpec("sgd"), seed=4, compute=Compute(loop))
    source = NumpyMaskSource(seed=2)
    runner.sampler.source = source
    before = runner.export_weights()
    batch = make_batches(task, n=1, seed=9)[0]
    loss = runner.train_epoch([batch], lr=1.0)
    after = runner.export_weights()
    masks = split_calls(source, len(expected_masks(spec)))[0]
    assert loss == pytest.approx(loss_ref(spec, before, batch.x, batch.y, masks), abs=1e-5)
    rng = np.random.default_rng(0)
    coords = [(name, int(i)) for name in sorted(before)
              for i in rng.choice(before[name].size, size=min(12, before[name].size),
                                  replace=False)]
    want = numeric_grad(spec, before, batch.x, batch.y, masks, coords)
    got = np.array([before[n].flat[i] - after[n].flat[i] for n, i in coords])
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-3)
    assert np.abs(want).max() > 1e-3  # the check is not vacuous
    if loop == "bptt":
        assert runner.compute_path() == "tf.function"


@pytest.mark.parametrize("task", ["lm", "classifier"])
def test_zero_rates_are_exactly_none(task):
    """p == 0: no draw, and the same numbers as `none` (not just the same distribution)."""
    batches = make_batches(task)
    base = none_predictions(task)
    for variant in [*CUSTOM[1:], Variant.KERAS3_BUILTIN]:
        runner = Runner(make_spec(variant, task, zero=True), OptimSpec(), seed=3)
        got = runner.predict(batches, stochastic=True)
        assert runner.sampler.calls == []
        if variant is Variant.KERAS3_BUILTIN:  # the stock layer: same function, other code
            np.testing.assert_allclose(got, base, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, base)


def test_zero_rates_train_exactly_like_none():
    batches = make_batches("lm")

    def trained(variant):
        runner = Runner(make_spec(variant, "lm", zero=True), OptimSpec("adam"), seed=2)
        losses = [runner.train_epoch(batches, lr=0.01) for _ in range(2)]
        return losses, runner.export_weights()

    base_losses, base = trained("none")
    for variant in ("keras_impl0", "weightdrop_column_untied"):
        losses, weights = trained(variant)
        assert losses == base_losses
        for name in base:
            np.testing.assert_array_equal(weights[name], base[name])


def test_forward_reference_differs_between_families():
    """Sanity of the fixtures: the masks matter, so equal outputs above are informative."""
    spec = make_spec("weightdrop")
    runner = Runner(spec, OptimSpec(), seed=0)
    w = runner.export_weights()
    x = make_batches("lm", n=1)[0].x
    mask = np.zeros((4 * H, H), np.float32)
    a = forward_ref(spec, w, x, {"weight.0": mask})[0]
    b = forward_ref(spec, w, x, {})[0]
    assert np.abs(a - b).max() > 1e-3
