"""The compiled Keras LSTM loop (framework.keras_loop=cpp, frameworks/keras_backend/
native_loop.py) against the autograd loops of recurrence.py, and its fallback.

- Loop level: every impl (0, 1, 2) x loss shape x mask set (input and/or recurrent, none) x
  per-sample or per-minibatch masks: outputs, final state and the gradients w.r.t. x, h0, c0,
  kernel, recurrent kernel and bias within 1e-5 of each tensor's largest entry (float32: the
  summation order of the matmuls differs).
- Model level: the Keras runner under `cpp` trains, evaluates and MC-evaluates to the numbers
  it gives under `bptt` (every LSTM variant the op covers, both tasks, both granularities), and
  records the path `cpp`; a variant it does not cover (a hook, the GRU) records `tf.function`.
- Fallback: with the build made to fail (no compiler), one warning, then exactly the numbers
  of `bptt`, recorded as `tf.function`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tensorflow as tf

from experiments.batching import Batch
from frameworks import native
from frameworks.base import initial_weights
from frameworks.compute import Compute
from frameworks.keras_backend import native_loop, recurrence
from frameworks.spec import Granularity, ModelSpec, OptimSpec, TaskKind, Variant, rates_used_by
from tests.conftest import skip_unless_built
from tests.test_keras_gal_bptt import (
    NAMES,
    SHAPES,
    make_case,
    rel_err,
    run_with_grads,
)

pytestmark = pytest.mark.keras
needs_build = pytest.mark.usefixtures("compiled")


@pytest.fixture
def compiled() -> None:
    """The compiled loop (first build: ~10-20 s); skipped where it cannot be built."""
    skip_unless_built(native_loop.BUILD)


# ---- loop level ----------------------------------------------------------------------------
MASK_SETS = {"in+rec": (True, True), "in": (True, False), "rec": (False, True),
             "none": (False, False)}
LOOP_CASES = [pytest.param(impl, shape, masks, bm, id=f"impl{impl}-{shape}-{name}-{bm_id}")
              for impl in (0, 1, 2) for shape in SHAPES for name, masks in MASK_SETS.items()
              for bm, bm_id in ((None, "per_sample"), (1, "per_minibatch"))
              if masks != (False, False) or bm is None]


@needs_build
@pytest.mark.parametrize(("impl", "shape", "masks", "bm"), LOOP_CASES)
def test_native_loop_equals_autograd(impl, shape, masks, bm):
    inputs, drawn, weights = make_case(impl, shape, masks, bm, tf.float32)
    loss = SHAPES[shape][-1]
    got = run_with_grads(native_loop.run, inputs, drawn, weights, loss)
    ref = run_with_grads(getattr(recurrence, f"autograd_impl{impl}"), inputs, drawn, weights,
                         loss)
    for name, a, b in zip(NAMES, got, ref, strict=True):
        assert a.shape == b.shape, name
        assert rel_err(a, b) <= 1e-5, (name, rel_err(a, b))


@needs_build
def test_not_covered_calls_return_none():
    """float64 (and so anything the op lacks) is the caller's to run."""
    inputs, drawn, _ = make_case(0, "lm", (True, True), None, tf.float64)
    assert native_loop.run(*inputs, **drawn) is None


# ---- model level ---------------------------------------------------------------------------
V, E, H, B, T = 16, 5, 6, 3, 7
RATES = dict(embedding_dropout=0.1, input_dropout=0.3, recurrent_dropout=0.4,
             output_dropout=0.2)


def _spec(variant: str, task: TaskKind, **kw) -> ModelSpec:
    used = rates_used_by(Variant(variant))
    rates = {k: p for k, p in RATES.items() if k.removesuffix("_dropout") in used}
    return ModelSpec(task_kind=task, vocab_size=V, num_outputs=V if task is TaskKind.LANGUAGE_MODEL
                     else 3, embed_size=E, hidden_size=H, num_layers=2, variant=variant,
                     init_scale=0.5, **rates, **kw)


def _batches(task: TaskKind) -> list[Batch]:
    rng = np.random.default_rng(3)
    y_shape = (B, T) if task is TaskKind.LANGUAGE_MODEL else (B,)
    return [Batch(rng.integers(0, V, (B, T)), rng.integers(0, V if task is
                                                           TaskKind.LANGUAGE_MODEL else 3,
                                                           y_shape)) for _ in range(2)]


def _train_and_predict(spec: ModelSpec, loop: str):
    """Loss, weights after two SGD steps, standard and MC predictions; the path recorded."""
    from frameworks.keras_backend import Runner

    runner = Runner(spec, OptimSpec("sgd"), seed=0, compute=Compute(loop))
    runner.load_weights(initial_weights(spec, 0))
    batches = _batches(spec.task_kind)
    loss = runner.train_epoch(batches, lr=0.5)
    std = runner.predict(batches, stochastic=False)
    mc = runner.predict(batches, stochastic=True)
    return loss, runner.export_weights(), std, mc, runner.compute_path()


MODEL_CASES = [(v, task, g) for v in ("none", "keras_impl0", "keras_impl1", "keras_impl2")
               for task in (TaskKind.LANGUAGE_MODEL, TaskKind.CLASSIFIER)
               for g in (Granularity.sample, Granularity.batch) if v != "none" or g is
               Granularity.sample]


@needs_build
@pytest.mark.parametrize("case", MODEL_CASES,
                         ids=[f"{v}-{t.value}-{g.value}" for v, t, g in MODEL_CASES])
def test_model_cpp_equals_bptt(case):
    variant, task, granularity = case
    spec = _spec(variant, task, granularity=granularity)
    ref = _train_and_predict(spec, "bptt")
    got = _train_and_predict(spec, "auto")  # the default: the compiled op
    assert (ref[-1], got[-1]) == ("tf.function", "cpp")
    assert got[0] == pytest.approx(ref[0], rel=1e-5)
    for name, r in ref[1].items():
        assert rel_err(got[1][name], r) <= 1e-5, name
    for a, r in zip(got[2:4], ref[2:4], strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)


@needs_build
def test_uncovered_layers_record_the_loop_that_ran():
    """Training with a hook (semeniuta's candidate mask) or the GRU runs the cell seam's loop
    under `cpp` too, to the same loss; semeniuta evaluates (no mask, no hook) through the op."""
    for spec, path in ((_spec("semeniuta", TaskKind.LANGUAGE_MODEL), "cpp+tf.function"),
                       (_spec("keras_impl0", TaskKind.LANGUAGE_MODEL, cell="gru"),
                        "tf.function")):
        ref = _train_and_predict(spec, "bptt")
        got = _train_and_predict(spec, "cpp")
        assert (ref[-1], got[-1]) == ("tf.function", path)
        assert got[0] == ref[0]


def test_unknown_loop_is_refused():
    from frameworks.keras_backend import Runner

    with pytest.raises(ValueError, match="framework.keras_loop='fast' is not one of: auto, "):
        Runner(_spec("none", TaskKind.CLASSIFIER), OptimSpec("sgd"), 0, compute=Compute("fast"))


# ---- fallback ------------------------------------------------------------------------------
def test_failed_build_warns_once_and_runs_the_existing_loop(monkeypatch, tmp_path):
    """No compiler: one NativeLoopUnavailable warning for the whole process, never an error,
    whether the compiled op was the default's choice or asked for; the numbers and the
    recorded path are those of `bptt`."""
    monkeypatch.setattr(native_loop, "BUILD", native_loop.BUILD.fresh())
    monkeypatch.setattr(native, "CACHE", tmp_path / "native")
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    spec = _spec("keras_impl2", TaskKind.CLASSIFIER)
    ref = _train_and_predict(spec, "bptt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _train_and_predict(spec, "cpp")
        again = _train_and_predict(_spec("keras_impl0", TaskKind.LANGUAGE_MODEL), "auto")
    ours = [w for w in caught if issubclass(w.category, native_loop.NativeLoopUnavailable)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "no-such-compiler" in str(ours[0].message)
    assert (got[-1], again[-1]) == ("tf.function", "tf.function")
    assert got[0] == ref[0]
    for name, r in ref[1].items():
        np.testing.assert_array_equal(got[1][name], r)
    assert not native_loop.BUILD.available()  # decided once per process: no second attempt
