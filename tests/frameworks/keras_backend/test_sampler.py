"""The Keras mask sampler and the per-call mask plan: values, streams, injection, counting."""

from __future__ import annotations

import numpy as np
import pytest

from frameworks.base import NumpyMaskSource
from frameworks.spec import Batch, ModelSpec, OptimSpec

pytestmark = pytest.mark.keras
kb = pytest.importorskip("frameworks.keras_backend")
from frameworks.keras_backend.sampler import EVAL, TRAIN, MaskSampler  # noqa: E402
from frameworks.masks import mask_plan  # noqa: E402


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.65])
def test_own_masks_take_only_the_two_values_at_the_right_rate(rate):
    mask = MaskSampler(0).draw("m", (200, 300), rate).numpy()
    assert mask.dtype == np.float32 and mask.shape == (200, 300)
    scale = np.float32(1.0) / np.float32(1.0 - rate)
    assert set(np.unique(mask).tolist()) == {0.0, float(scale)}
    assert abs((mask == 0).mean() - rate) < 0.01


def test_draws_are_fresh_and_seeded():
    a, b = MaskSampler(1), MaskSampler(1)
    first, second = a.draw("m", (50, 50), 0.5), a.draw("m", (50, 50), 0.5)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, b.draw("m", (50, 50), 0.5))
    assert not np.array_equal(first, MaskSampler(2).draw("m", (50, 50), 0.5))
    assert a.calls == [("m", (50, 50), 0.5), ("m", (50, 50), 0.5)]


def test_eval_stream_does_not_move_the_training_stream():
    a, b = MaskSampler(7), MaskSampler(7)
    a.draw("m", (10, 10), 0.5)
    b.draw("m", (10, 10), 0.5)
    a.use(EVAL)
    evaluated = a.draw("m", (10, 10), 0.5)
    a.draw("m", (10, 10), 0.5)
    a.use(TRAIN)
    nxt = a.draw("m", (10, 10), 0.5)
    np.testing.assert_array_equal(nxt, b.draw("m", (10, 10), 0.5))
    assert not np.array_equal(evaluated, nxt)
    with pytest.raises(ValueError, match="stream"):
        a.use("mc")


def test_zero_rate_and_bad_injection_are_refused():
    sampler = MaskSampler(0)
    with pytest.raises(ValueError, match="rate 0 draws nothing"):
        sampler.draw("m", (2, 2), 0.0)
    sampler.source = lambda name, shape, rate: np.ones((3, 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        sampler.draw("m", (2, 2), 0.5)


def test_injected_masks_are_returned_and_recorded():
    fixed = np.array([[2.0, 0.0]], np.float32)
    source = NumpyMaskSource(fixed={"m": fixed})
    sampler = MaskSampler(0)
    sampler.source = source
    np.testing.assert_array_equal(sampler.draw("m", (1, 2), 0.5), fixed)
    assert source.calls == sampler.calls == [("m", (1, 2), 0.5)]


def _spec(**kw) -> ModelSpec:
    base = dict(task_kind="lm", vocab_size=9, num_outputs=9, embed_size=4, hidden_size=3,
                num_layers=2, variant="keras_impl1", embedding_dropout=0.1, input_dropout=0.2,
                recurrent_dropout=0.3, output_dropout=0.4)
    return ModelSpec(**{**base, **kw})


def test_plan_order_and_phases():
    spec = _spec()
    names = [r.name for r in mask_plan(spec, 2, 5, "train")]
    assert names == ["embedding", "input.0", "recurrent.0", "input.1", "recurrent.1", "output"]
    assert mask_plan(spec, 2, 5, "mc") == mask_plan(spec, 2, 5, "train")
    assert mask_plan(spec, 2, 5, "eval") == []
    wd = _spec(variant="weightdrop_variational", recurrent_dropout=0.0, weight_dropout=0.5,
               eval_active=True)
    assert [(r.name, r.shape) for r in mask_plan(wd, 2, 5, "eval")] == [
        ("weight.0", (12, 1)), ("weight.1", (12, 1))]


def test_builtin_plan_leaves_the_library_masks_to_keras():
    spec = _spec(variant="keras3_builtin")
    assert [r.name for r in mask_plan(spec, 2, 5, "train")] == ["embedding"]


def test_runner_draws_one_set_per_training_batch():
    spec = _spec(num_layers=1)
    runner = kb.Runner(spec, OptimSpec(), seed=0)
    rng = np.random.default_rng(0)
    batches = [Batch(rng.integers(0, 9, (2, 5)), rng.integers(0, 9, (2, 5))) for _ in range(3)]
    runner.train_epoch(batches, lr=0.1)
    plan = [tuple(r) for r in mask_plan(spec, 2, 5, "train")]
    assert runner.sampler.calls == plan * 3
    assert runner.sampler.stream == TRAIN


def test_training_and_evaluating_with_the_keras_backend_never_imports_torch():
    """In a fresh interpreter: load the Keras backend, train and evaluate (standard and MC) a
    model with masks; torch must not have been imported (the two frameworks fight over threads,
    and the Keras runs of a sweep must not pay for loading PyTorch)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, numpy as np\n"
        "from frameworks.base import load_backend\n"
        "from frameworks.spec import Batch, ModelSpec, OptimSpec\n"
        "kb = load_backend('keras')\n"
        "spec = ModelSpec(task_kind='lm', vocab_size=9, num_outputs=9, embed_size=3,\n"
        "                 hidden_size=3, num_layers=1, variant='keras_impl1', input_dropout=0.2,\n"
        "                 recurrent_dropout=0.2, output_dropout=0.2)\n"
        "r = kb.Runner(spec, OptimSpec(), seed=0)\n"
        "x = np.random.default_rng(0).integers(0, 9, (2, 4))\n"
        "r.train_epoch([Batch(x, x)], lr=0.1)\n"
        "r.predict([Batch(x, x)], stochastic=False)\n"
        "r.predict([Batch(x, x)], stochastic=True)\n"
        "assert 'tensorflow' in sys.modules\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch')\n"
        "assert not bad, bad[:5]\n"
    )
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(root), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[proc.stderr.rfind("Traceback"):][-2000:]
