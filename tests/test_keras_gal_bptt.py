"""The hand-written backward of the Keras LSTM Gal loops (gal_bptt.py) against TensorFlow's
autograd through the plain loops (recurrence.autograd_impl0/1/2): outputs, final states and the
gradients w.r.t. every input (x, h0, c0, kernel, recurrent kernel, bias) must agree within float
rounding, for every mask combination the layer can pass, per-sample and per-minibatch masks, and
for the loss shapes of both tasks (classifier: h_T only; LM: every output plus the carried state).
The autograd loops are themselves checked against the numpy reference in
test_keras_reference.py, so agreeing with them ties the hand-written path to it too."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import tensorflow as tf

from frameworks.keras_backend import recurrence

pytestmark = pytest.mark.keras

IMPLS = (0, 1, 2)
MASKS = [(True, True), (True, False), (False, True), (False, False)]  # (input, recurrent)
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


def _cases() -> list:
    """Every impl x shape x mask set x mask batch size in float32, float64 on the LM shape;
    without masks the mask batch size is moot (one case)."""
    out = []
    for impl in IMPLS:
        for shape in SHAPES:
            for masks, mask_id in zip(MASKS, ["in+rec", "in", "rec", "none"], strict=True):
                for bm, bm_id in ((None, "per_sample"), (1, "per_minibatch")):
                    if masks == (False, False) and bm == 1:
                        continue
                    for dtype in (tf.float32, tf.float64):
                        if dtype == tf.float64 and shape != "lm":
                            continue
                        out.append(pytest.param(impl, shape, masks, bm, dtype, id="-".join(
                            [f"impl{impl}", shape, mask_id, bm_id, dtype.name])))
    return out


@pytest.mark.parametrize(("impl", "shape", "masks", "bm", "dtype"), _cases())
def test_hand_backward_matches_autograd(impl: int, shape: str, masks: tuple[bool, bool],
                                        bm: int | None, dtype: tf.DType) -> None:
    inputs, drawn, weights = make_case(impl, shape, masks, bm, dtype)
    loss = SHAPES[shape][-1]
    hand = run_with_grads(getattr(recurrence, f"run_impl{impl}"), inputs, drawn, weights, loss)
    auto = run_with_grads(getattr(recurrence, f"autograd_impl{impl}"), inputs, drawn, weights,
                          loss)
    tol = 1e-5 if dtype == tf.float32 else 1e-12
    for name, a, b in zip(NAMES, hand, auto, strict=True):
        assert a.shape == b.shape, name
        assert rel_err(a, b) <= tol, (name, rel_err(a, b))


def test_hand_path_is_the_default() -> None:
    """run_impl0/1/2 go through gal_bptt unless HAND_BPTT is switched off."""
    assert recurrence.HAND_BPTT is True


def test_autograd_switch_gives_the_autograd_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, drawn, weights = make_case(0, "lm", (True, True), None, tf.float64)
    monkeypatch.setattr(recurrence, "HAND_BPTT", False)
    switched = run_with_grads(recurrence.run_impl0, inputs, drawn, weights, "lm")
    auto = run_with_grads(recurrence.autograd_impl0, inputs, drawn, weights, "lm")
    for a, b in zip(switched, auto, strict=True):
        np.testing.assert_array_equal(a, b)


def test_eager_call_matches_compiled() -> None:
    """The custom gradient also works outside tf.function (the while loops run eagerly)."""
    inputs, drawn, weights = make_case(1, "outputs", (True, True), 1, tf.float64)
    compiled = run_with_grads(recurrence.run_impl1, inputs, drawn, weights, "out")
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out, _, _ = recurrence.run_impl1(*inputs, **drawn)
        total = tf.reduce_sum(out * weights[0])
    eager = [out, *tape.gradient(total, inputs)]
    for a, b in zip(eager, [compiled[0], *compiled[3:]], strict=True):
        assert rel_err(a, b) <= 1e-12
