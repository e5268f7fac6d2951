"""Cross-framework parity: the same initial weights, batches and injected masks give the same
numbers in PyTorch and Keras (outputs, losses, gradients, trajectories, metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.batching import batches
from experiments.metrics import compute
from experiments.tasks import load_task
from frameworks.base import NumpyMaskSource, initial_weights, load_backend
from frameworks.spec import FRAMEWORK_VARIANTS, ModelSpec, OptimSpec, Variant, rates_used_by

pytestmark = pytest.mark.keras

SHARED = sorted(FRAMEWORK_VARIANTS["torch"] & FRAMEWORK_VARIANTS["keras"], key=list(Variant).index)
SIZES = {"ptb": (3, 5, 2), "rt": (4, 12, 1), "imdb": (4, 12, 1)}  # batch, steps, layers
RATE = 0.3


def task_batches(task: str, count: int):
    batch, steps, _ = SIZES[task]
    data = load_task(task, vocab_size=None if task == "ptb" else 20_000, maxlen=steps)
    return data, list(batches(data, "train", batch, steps))[:count]


def make_spec(task: str, variant: Variant, data, cell: str = "lstm", **kw) -> ModelSpec:
    layers = SIZES[task][2]
    used = rates_used_by(variant) - ({"zoneout_cell"} if cell == "gru" else set())  # h only
    rates = {f"{r}_dropout": RATE for r in used}
    return ModelSpec(data.kind, data.vocab_size, data.num_outputs, 6, 6, layers, variant,
                     cell=cell, **rates, **kw)


def runner(framework: str, spec: ModelSpec, weights):
    r = load_backend(framework).Runner(spec, OptimSpec("sgd"), seed=0)
    r.load_weights(weights)
    return r


def one_step(framework: str, spec: ModelSpec, weights, sample):
    """MC probabilities, then the loss and gradient (w0 - w1 at lr 1) of one SGD step."""
    r = runner(framework, spec, weights)
    r.sampler.source = NumpyMaskSource(seed=1)
    probs = r.predict(sample, stochastic=True)
    r.sampler.source = NumpyMaskSource(seed=2)
    loss = r.train_epoch(sample[:1], 1.0)
    after = r.export_weights()
    grads = {k: weights[k].astype(np.float64) - after[k] for k in weights}
    return probs, loss, grads


@pytest.mark.parametrize("task", list(SIZES))
@pytest.mark.parametrize("variant", SHARED, ids=[v.value for v in SHARED])
def test_same_weights_batches_and_masks_give_the_same_numbers(task, variant):
    check_parity(task, variant, "lstm")


@pytest.mark.parametrize("task", ["ptb", "rt"])
@pytest.mark.parametrize("variant", SHARED, ids=[v.value for v in SHARED])
def test_gru_same_weights_batches_and_masks_give_the_same_numbers(task, variant):
    """Every variant both frameworks share also runs a GRU (the library rows, which do not, are
    framework-specific and so never shared)."""
    check_parity(task, variant, "gru")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_semeniuta_per_step_gives_the_same_numbers(cell):
    check_parity("ptb", Variant("semeniuta"), cell, per_step=True)


def check_parity(task: str, variant: Variant, cell: str, **kw) -> None:
    data, sample = task_batches(task, 2)
    spec = make_spec(task, variant, data, cell, **kw)
    weights = initial_weights(spec, seed=5)
    p_t, loss_t, g_t = one_step("torch", spec, weights, sample)
    p_k, loss_k, g_k = one_step("keras", spec, weights, sample)
    assert p_t.shape == p_k.shape
    np.testing.assert_allclose(p_k, p_t, atol=1e-5, rtol=0)
    assert abs(loss_k - loss_t) <= 1e-5
    for name, g in g_t.items():
        scale = max(np.abs(g).max(), 1e-3)
        assert np.abs(g_k[name] - g).max() <= 1e-4 * scale + 2e-7, name
    assert any(np.abs(g).max() > 0 for g in g_t.values())


@pytest.mark.parametrize("task", ["rt", "ptb"])
@pytest.mark.parametrize(
    "variant", [Variant.none, Variant.keras_impl1, Variant.weightdrop_column, Variant.naive])
def test_twenty_sgd_steps_follow_the_same_loss_curve(task, variant):
    data, sample = task_batches(task, 20)
    spec = make_spec(task, variant, data)
    weights = initial_weights(spec, seed=7)
    curves = {}
    for framework in ("torch", "keras"):
        r = runner(framework, spec, weights)
        r.sampler.source = NumpyMaskSource(seed=3)
        curves[framework] = np.array([r.train_epoch([b], 0.5) for b in sample])
    assert len(curves["torch"]) == 20
    np.testing.assert_allclose(curves["keras"], curves["torch"], rtol=1e-4)
    assert curves["torch"][-1] != curves["torch"][0]


@pytest.mark.parametrize("task", ["rt", "ptb"])
def test_standard_and_mc_metrics_agree(task):
    data, sample = task_batches(task, 3)
    spec = make_spec(task, Variant.keras_impl2, data)
    weights = initial_weights(spec, seed=9)
    labels = None if task == "ptb" else np.concatenate([b.y for b in sample])
    metrics = {}
    for framework in ("torch", "keras"):
        r = runner(framework, spec, weights)
        std = compute(data.kind, r.predict(sample, stochastic=False), labels)
        r.sampler.source = NumpyMaskSource(seed=4)
        mc = np.mean([r.predict(sample, stochastic=True) for _ in range(3)], axis=0)
        mc_metrics = {f"{k}_mc": v for k, v in compute(data.kind, mc, labels).items()}
        metrics[framework] = {**std, **mc_metrics}
    for key, value in metrics["torch"].items():
        assert metrics["keras"][key] == pytest.approx(value, rel=1e-5), key
