"""The compiled Keras layer (framework.keras_loop=cpp, frameworks/keras_backend/native_loop.py)
against the loops of the `tf.function` path, and its fallback.

- Loop level: every LSTM impl (0, 1, 2) x loss shape x mask set (input and/or recurrent, none) x
  per-sample or per-minibatch masks against cells.py's loop; the LSTM and the GRU
  with the Gal masks (tied, per gate), Semeniuta's candidate mask (per sequence, per step, one
  per batch) and Zoneout's updates (masks, the expectation) against cells.py's loop: outputs,
  final state and the gradients w.r.t. x, h0, c0, kernel, recurrent kernel, bias (and bias_hh)
  within 1e-5 of each tensor's largest entry (float32: the summation order of the matmuls
  differs). A hook without core slots, float64 or a GRU zoning out c is not computed (None).
- Model level: the Keras runner under `auto` (the compiled op) trains, evaluates and
  MC-evaluates to the numbers it gives under `bptt` (the tf.function path, which
  tests/frameworks/keras_backend/test_gru_semeniuta_zoneout.py holds to the numpy reference): the
  LSTM Gal family, the GRU's, both cells' semeniuta (per sequence, per step, per batch) and zoneout
  (masks in training, the expectation in evaluation), both tasks, and records the path `cpp`; a hook
  that declares no core slots runs on `tf.function`, recorded as such, with one warning under
  `auto`.
- Fallback: with the build made to fail (no compiler), one warning, then exactly the numbers
  of `bptt`, recorded as `tf.function`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from experiments.batching import Batch
from frameworks import compute as compute_paths
from frameworks import native
from frameworks.base import initial_weights
from frameworks.compute import Compute, ComputePathWarning
from frameworks.keras_backend import cells, hooks, native_loop
from frameworks.spec import Granularity, ModelSpec, OptimSpec, TaskKind, Variant, rates_used_by
from tests.conftest import skip_unless_built

# one xdist worker for the compiled builds in results/native (this, test_fused_loop.py,
# test_native_build.py): their first builds and g++ do not race each other
pytestmark = [pytest.mark.keras, pytest.mark.xdist_group("native_build")]
needs_build = pytest.mark.usefixtures("compiled")


@pytest.fixture
def compiled() -> None:
    """The compiled loop (first build: ~10-20 s); skipped where it cannot be built."""
    skip_unless_built(native_loop.BUILD)


# ---- loop level ----------------------------------------------------------------------------
# name: (T, B, D, H, loss): "cls" reads h_T only, "lm" every output and (h_T, c_T)
SHAPES = {"cls": (12, 8, 6, 5, "cls"), "lm": (9, 4, 5, 7, "lm"), "outputs": (6, 3, 4, 4, "out")}


def rel_err(a: tf.Tensor, b: tf.Tensor) -> float:
    """max |a - b| / max |b|: a relative error that tolerates entries near zero."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def make_case(impl: int, shape: str, masks: tuple[bool, bool], bm: int | None,
              dtype: tf.DType, seed: int = 0) -> tuple[list[tf.Tensor], dict, list[tf.Tensor]]:
    """Inputs (x, h0, c0, kernel, U, bias), the masks and the loss weights of one case; masks
    of rate 0.3 scaled by 1/0.7, (4, Bm, .) per gate for impl 0/1, (Bm, .) tied for impl 2."""
    t, b, d, h, _ = SHAPES[shape]
    rng = np.random.default_rng(seed)

    def normal(*size: int) -> tf.Tensor:
        return tf.constant(rng.normal(0.0, 0.6, size), dtype)

    def mask(width: int) -> tf.Tensor:
        size = ((4,) if impl < 2 else ()) + (bm or b, width)
        return tf.constant((rng.random(size) >= 0.3) / 0.7, dtype)

    inputs = [normal(t, b, d), normal(b, h), normal(b, h), normal(d, 4 * h), normal(h, 4 * h),
              normal(4 * h)]
    drawn = {"in_mask": mask(d) if masks[0] else None,
             "rec_mask": mask(h) if masks[1] else None}
    weights = [normal(t, b, h), normal(b, h), normal(b, h)]
    return inputs, drawn, weights


def run_with_grads(loop: Callable, inputs: list[tf.Tensor], masks: dict,
                   weights: list[tf.Tensor], loss: str) -> list[tf.Tensor]:
    """(outputs, h_T, c_T, then d loss / d each input), compiled as the runner compiles."""

    @tf.function(autograph=False)
    def run(*inputs: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out, h, c = loop(*inputs, **masks)
            terms = {"cls": [h * weights[1]],
                     "lm": [out * weights[0], h * weights[1], c * weights[2]],
                     "out": [out * weights[0]]}[loss]
            total = tf.add_n([tf.reduce_sum(term) for term in terms])
        return [out, h, c, *tape.gradient(total, inputs)]

    return run(*inputs)


NAMES = ["outputs", "h_T", "c_T", "dx", "dh0", "dc0", "dkernel", "drecurrent", "dbias"]


MASK_SETS = {"in+rec": (True, True), "in": (True, False), "rec": (False, True),
             "none": (False, False)}
LOOP_CASES = [pytest.param(impl, shape, masks, bm, id=f"impl{impl}-{shape}-{name}-{bm_id}")
              for impl in (0, 1, 2) for shape in SHAPES for name, masks in MASK_SETS.items()
              for bm, bm_id in ((None, "per_sample"), (1, "per_minibatch"))
              if masks != (False, False) or bm is None]


def _lstm_op(xs, h, c, kernel, u, bias, in_mask=None, rec_mask=None):  # noqa: ANN001, ANN202
    return native_loop.run("lstm", xs, h, c, kernel, u, bias, None, in_mask, rec_mask)


def _lstm_loop(xs, h, c, kernel, u, bias, in_mask=None, rec_mask=None):  # noqa: ANN001, ANN202
    return cells.run("lstm", xs, h, c, kernel, u, bias, None, in_mask, rec_mask)


@needs_build
@pytest.mark.parametrize(("impl", "shape", "masks", "bm"), LOOP_CASES)
def test_native_loop_equals_autograd(impl, shape, masks, bm):
    inputs, drawn, weights = make_case(impl, shape, masks, bm, tf.float32)
    loss = SHAPES[shape][-1]
    got = run_with_grads(_lstm_op, inputs, drawn, weights, loss)
    ref = run_with_grads(_lstm_loop, inputs, drawn, weights, loss)
    for name, a, b in zip(NAMES, got, ref, strict=True):
        assert a.shape == b.shape, name
        assert rel_err(a, b) <= 1e-5, (name, rel_err(a, b))


# Hooked loops, both cells: (T, B, D, H) and, per case, what the layer gets: Gal masks
# ("tied": (B, X) per sample; "per_gate": (G, 1, X) one per batch), the candidate mask's
# batch-major (Bm, Tm, H) shape, and Zoneout's updates ("masks": 0/1 (B, T, H); "expected": the
# scalar expectations of evaluation); "c" zones out c too (the LSTM's; a GRU has none).
HOOK_DIMS = (7, 4, 5, 6)
HOOK_CASES = {
    "plain": {},
    "gal-tied": {"gal": "tied"},
    "gal-per_gate": {"gal": "per_gate"},
    "candidate": {"candidate": ("B", 1)},
    "candidate-per_step": {"candidate": ("B", "T")},
    "candidate-batch": {"candidate": (1, 1)},
    "candidate-per_step-batch": {"candidate": (1, "T")},
    "zoneout": {"zoneout": "masks"},
    "zoneout-c": {"zoneout": "masks", "c": True},
    "zoneout-expected": {"zoneout": "expected", "c": True},
    "all": {"gal": "tied", "candidate": ("B", "T"), "zoneout": "masks", "c": True},
}
HOOK_LOOP_CASES = [pytest.param(cell, case, loss, id=f"{cell}-{case}-{loss}")
                   for cell in ("lstm", "gru") for case, how in HOOK_CASES.items()
                   for loss in ("lm", "cls") if cell == "lstm" or case != "zoneout-c"]


def _hooked_case(cell: str, how: dict, seed: int = 0):
    """(inputs: x, h0, c0, kernel, U, bias (and bias_hh for a GRU); in_mask, rec_mask; hooks;
    the loss weights) of one hooked case, masks of rate 0.3 (zoneout: 0 or 1)."""
    t, b, d, h = HOOK_DIMS
    g = 3 if cell == "gru" else 4
    zone_c = bool(how.get("c")) and cell == "lstm"
    rng = np.random.default_rng(seed)

    def normal(*size: int) -> tf.Tensor:
        return tf.constant(rng.normal(0.0, 0.6, size), tf.float32)

    def mask(*size: int) -> tf.Tensor:
        return tf.constant((rng.random(size) >= 0.3) / 0.7, tf.float32)

    inputs = [normal(t, b, d), normal(b, h), normal(b, h), normal(d, g * h), normal(h, g * h),
              normal(g * h)] + ([normal(g * h)] if cell == "gru" else [])
    in_mask = rec_mask = None
    if how.get("gal") == "tied":
        in_mask, rec_mask = mask(b, d), mask(b, h)
    elif how.get("gal") == "per_gate":
        in_mask, rec_mask = mask(g, 1, d), mask(g, 1, h)
    step_hooks: list[cells.StepHook] = []
    if "candidate" in how:
        bm, tm = ({"B": b, "T": t}.get(n, n) for n in how["candidate"])
        step_hooks.append(hooks.CandidateDropout(mask(bm, tm, h)))
    if how.get("zoneout") == "masks":
        step_hooks.append(hooks.Zoneout([tf.sign(mask(b, t, h)),
                                         tf.sign(mask(b, t, h)) if zone_c else None]))
    elif how.get("zoneout") == "expected":
        step_hooks.append(hooks.Zoneout([0.75, 0.5 if zone_c else None]))
    weights = [normal(t, b, h), normal(b, h), normal(b, h)]
    return inputs, in_mask, rec_mask, step_hooks, weights


def _grads(loop, inputs: list[tf.Tensor], weights: list[tf.Tensor], loss: str):  # noqa: ANN001
    """(outputs, h_T, c_T, then d loss / d each input, zero where unconnected: a GRU's c)."""

    @tf.function(autograph=False)
    def run(*inputs: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out, h, c = loop(*inputs)
            terms = [h * weights[1]] if loss == "cls" else [out * weights[0], h * weights[1],
                                                           c * weights[2]]
            total = tf.add_n([tf.reduce_sum(term) for term in terms])
        return [out, h, c, *tape.gradient(total, inputs,
                                          unconnected_gradients=tf.UnconnectedGradients.ZERO)]

    return run(*inputs)


@needs_build
@pytest.mark.parametrize(("cell", "case", "loss"), HOOK_LOOP_CASES)
def test_hooked_loops_equal_the_cell_seam(cell, case, loss):
    """The op against cells.run (the tf.function path's loop for every GRU and hook)."""
    inputs, in_mask, rec_mask, step_hooks, weights = _hooked_case(cell, HOOK_CASES[case])

    def loop(fn):  # noqa: ANN001, ANN202
        return lambda xs, h, c, kernel, u, bias, *bias_hh: fn(
            cell, xs, h, c, kernel, u, bias, bias_hh[0] if bias_hh else None, in_mask, rec_mask,
            step_hooks)

    assert native_loop.core_slots(cell, step_hooks) is not None  # the op computes this call
    got = _grads(loop(native_loop.run), inputs, weights, loss)
    ref = _grads(loop(cells.run), inputs, weights, loss)
    names = [*NAMES, "dbias_hh"][:len(ref)]
    assert len(got) == len(ref)
    for name, a, b in zip(names, got, ref, strict=True):
        assert a.shape == b.shape, name
        assert rel_err(a, b) <= 1e-5, (name, rel_err(a, b))
    assert float(tf.reduce_max(tf.abs(ref[0]))) > 0.05  # not a vanishing case


class _Slotless(hooks.CandidateDropout):
    """Candidate dropout as a hook the compiled core does not know (no core slots)."""

    kind = "slotless"

    def core_slots(self) -> None:
        return None


@needs_build
def test_not_covered_calls_return_none():
    """float64, a hook without core slots, a GRU zoning out a c it does not carry: the
    caller's to run."""
    inputs, drawn, _ = make_case(0, "lm", (True, True), None, tf.float64)
    assert _lstm_op(*inputs, **drawn) is None
    for cell, step_hooks in (
            ("lstm", [_Slotless(tf.ones((4, 1, 6)))]),
            ("lstm", [hooks.Zoneout([0.5, None]), _Slotless(tf.ones((4, 1, 6)))]),
            ("gru", [hooks.Zoneout([0.5, 0.5])])):
        inputs, in_mask, rec_mask, _, _ = _hooked_case(cell, {})
        bias_hh = inputs[6] if cell == "gru" else None
        assert native_loop.run(cell, *inputs[:6], bias_hh, in_mask, rec_mask, step_hooks) is None


def test_hooks_declare_their_core_slots_and_the_cpp_path_follows():
    """Each Keras hook names its masks by the core's slots (time-major); the cpp path computes
    exactly the kinds whose class declares them."""
    from frameworks.keras_backend import compute

    assert hooks.CORE_KINDS == {"candidate", "zoneout"} == compute.CPP.hooks
    assert compute.CPP.cells == {"lstm", "gru"}
    mask = tf.ones((4, 1, 6))
    assert hooks.CandidateDropout(mask).core_slots()["candidate"].shape == (1, 4, 6)
    per_step = hooks.CandidateDropout(tf.ones((1, 7, 6))).core_slots()["candidate"]
    assert per_step.shape == (7, 1, 6)
    zoneout = hooks.Zoneout([tf.ones((4, 7, 6)), 0.5]).core_slots()
    assert zoneout["zoneout_h"].shape == (7, 4, 6) and zoneout["zoneout_c"] == 0.5
    assert _Slotless(mask).core_slots() is None and cells.StepHook().core_slots() is None


# ---- model level ---------------------------------------------------------------------------
V, E, H, B, T = 16, 5, 6, 3, 7
RATES = dict(embedding_dropout=0.1, input_dropout=0.3, recurrent_dropout=0.4,
             output_dropout=0.2, zoneout_cell_dropout=0.5, zoneout_hidden_dropout=0.25)


def _spec(variant: str, task: TaskKind, **kw) -> ModelSpec:
    used = rates_used_by(Variant(variant)) - ({"zoneout_cell"} if kw.get("cell") == "gru"
                                              else set())
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


LM, CLS = TaskKind.LANGUAGE_MODEL, TaskKind.CLASSIFIER
SAMPLE, BATCH = Granularity.sample, Granularity.batch
GAL = ("keras_impl0", "keras_impl1", "keras_impl2")
# (variant, task, the spec's knobs): the LSTM Gal family as before; the GRU's; semeniuta per
# sequence, per step and per batch and zoneout, on both cells
MODEL_CASES = [
    *[(v, task, {"granularity": g}) for v in ("none", *GAL) for task in (LM, CLS)
      for g in (SAMPLE, BATCH) if v != "none" or g is SAMPLE],
    *[(v, task, {"cell": "gru", "granularity": g}) for v in ("none", *GAL)
      for task, g in ((LM, SAMPLE), (CLS, BATCH)) if v != "none" or g is SAMPLE],
    *[("semeniuta", task, {"cell": cell, **knobs}) for cell in ("lstm", "gru")
      for task, knobs in ((LM, {}), (CLS, {}), (LM, {"per_step": True}),
                          (CLS, {"per_step": True, "granularity": BATCH}),
                          (LM, {"granularity": BATCH}))],
    *[("zoneout", task, {"cell": cell}) for cell in ("lstm", "gru") for task in (LM, CLS)],
]


def _model_id(case) -> str:  # noqa: ANN001
    variant, task, knobs = case
    return "-".join([variant, task.value, *(f"{k}={getattr(v, 'value', v)}"
                                            for k, v in knobs.items())])


@needs_build
@pytest.mark.parametrize("case", MODEL_CASES, ids=[_model_id(c) for c in MODEL_CASES])
def test_model_cpp_equals_bptt(case):
    variant, task, knobs = case
    spec = _spec(variant, task, **knobs)
    ref = _train_and_predict(spec, "bptt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ComputePathWarning)  # no code gap left for these calls
        got = _train_and_predict(spec, "auto")  # the default: the compiled op
    assert (ref[-1], got[-1]) == ("tf.function", "cpp")
    assert got[0] == pytest.approx(ref[0], rel=1e-5)
    for name, r in ref[1].items():
        assert rel_err(got[1][name], r) <= 1e-5, name
    for a, r in zip(got[2:4], ref[2:4], strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-5)


@needs_build
def test_a_hook_without_core_slots_runs_the_loop_that_computes_it(monkeypatch):
    """A hook whose class declares no core slots is a code gap of the cpp path: `auto` says so
    once and trains on tf.function, to bptt's loss exactly; the standard evaluation (no mask,
    so no hook) runs on the op, and the record says both."""
    compute_paths.candidates.cache_clear()
    monkeypatch.setitem(hooks.HOOKS, "candidate", lambda spec, k, masks: (
        None if masks.get(f"candidate.{k}") is None else _Slotless(masks[f"candidate.{k}"])))
    spec = _spec("semeniuta", LM, cell="gru")
    ref = _train_and_predict(spec, "bptt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _train_and_predict(spec, "auto")
    said = [str(w.message) for w in caught if issubclass(w.category, ComputePathWarning)]
    assert len(said) == 1 and "the slotless hook" in said[0], said
    assert (ref[-1], got[-1]) == ("tf.function", "cpp+tf.function")
    assert got[0] == ref[0]
    for name, r in ref[1].items():
        np.testing.assert_array_equal(got[1][name], r)
    compute_paths.candidates.cache_clear()


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
