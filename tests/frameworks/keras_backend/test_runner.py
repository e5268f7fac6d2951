"""The Keras runner as a whole: seeding, truncated BPTT, optimiser arithmetic, divergence,
evaluation streams, weight exchange, `eval_active`, and the stock `keras3_builtin` row."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from frameworks.base import DivergenceError, NumpyMaskSource, initial_weights
from frameworks.spec import Batch, ModelSpec, OptimSpec, SpecError
from tests.support.keras_reference import loss_ref, target_probs_ref

pytestmark = pytest.mark.keras
kb = pytest.importorskip("frameworks.keras_backend")
Runner = kb.Runner

V, E, H, B, T = 16, 4, 4, 2, 5


def spec_(variant="none", task="lm", layers=1, **kw) -> ModelSpec:
    return ModelSpec(task_kind=task, vocab_size=V, num_outputs=V if task == "lm" else 3,
                     embed_size=E, hidden_size=H, num_layers=layers, variant=variant,
                     init_scale=0.5, **kw)


def lm_batches(n=2, seed=0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    return [Batch(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))) for _ in range(n)]


def delta(a: dict, b: dict) -> dict:
    return {k: a[k].astype(np.float64) - b[k] for k in a}


GAL = dict(variant="keras_impl1", embedding_dropout=0.1, input_dropout=0.2,
           recurrent_dropout=0.3, output_dropout=0.2)


def test_same_seed_same_results_and_other_seed_differs():
    def run(seed):
        r = Runner(spec_(layers=2, **GAL), OptimSpec("adam", clip_norm=0.5), seed=seed)
        losses = [r.train_epoch(lm_batches(), lr=0.01) for _ in range(2)]
        return losses, r.predict(lm_batches(), stochastic=True), r.export_weights()

    a, b, c = run(5), run(5), run(6)
    assert a[0] == b[0]
    np.testing.assert_allclose(a[1], b[1], atol=1e-6)
    for k in a[2]:
        np.testing.assert_allclose(a[2][k], b[2][k], atol=1e-6)
    assert a[0] != c[0]


def test_weights_start_from_initial_weights_and_round_trip():
    spec = spec_(tie_weights=True)
    r = Runner(spec, OptimSpec(), seed=3)
    init = initial_weights(spec, 3)
    assert set(r.export_weights()) == set(init)
    for k, v in r.export_weights().items():
        np.testing.assert_array_equal(v, init[k])
    other = initial_weights(spec, 4)
    r.load_weights(other)
    for k, v in r.export_weights().items():
        np.testing.assert_array_equal(v, other[k])
    with pytest.raises(ValueError, match="rnn.0.w_hh"):
        r.load_weights({**other, "rnn.0.w_hh": np.zeros((H, 4 * H), np.float32)})
    with pytest.raises(ValueError, match="unexpected"):
        r.load_weights({**other, "decoder.weight": np.zeros((V, H), np.float32)})


def test_lm_state_is_carried_within_a_call_and_reset_between_calls():
    spec = spec_()
    r = Runner(spec, OptimSpec("sgd"), seed=0)
    w = r.export_weights()
    b1, b2 = lm_batches()
    both = r.predict([b1, b2], stochastic=False)
    np.testing.assert_array_equal(both, r.predict([b1, b2], stochastic=False))
    alone = r.predict([b2], stochastic=False)
    assert np.abs(both[B * T:] - alone).max() > 1e-4
    p1, states = target_probs_ref(spec, w, b1.x, b1.y, {})
    p2, _ = target_probs_ref(spec, w, b2.x, b2.y, {}, states)
    np.testing.assert_allclose(both, np.concatenate([p1, p2]), atol=1e-5)
    # train_epoch with lr=0: the mean token loss over the epoch, state carried like predict
    loss = r.train_epoch([b1, b2], lr=0.0)
    want = (loss_ref(spec, w, b1.x, b1.y, {})
            + loss_ref(spec, w, b2.x, b2.y, {}, states)) / 2
    assert loss == pytest.approx(want, abs=1e-5)


def _grad(weights, batch, task="lm") -> dict:
    """Gradient at `weights` from one SGD step with lr=1."""
    r = Runner(spec_(task=task), OptimSpec("sgd"), seed=0)
    r.load_weights(weights)
    r.train_epoch([batch], lr=1.0)
    return delta(weights, r.export_weights())


def test_adam_clip_and_weight_decay_follow_pytorch_arithmetic():
    spec = spec_()
    w0 = initial_weights(spec, 0)
    batch = lm_batches(1)[0]
    g0 = _grad(w0, batch)
    norm = np.sqrt(sum((g ** 2).sum() for g in g0.values()))
    clip, wd, lr = 0.1 * norm, 0.01, 0.5
    r = Runner(spec, OptimSpec("sgd", clip_norm=clip, weight_decay=wd), seed=0)
    r.train_epoch([batch], lr=lr)
    coef = clip / (norm + 1e-6)  # clip first, then coupled L2 on the unclipped weights
    for k, d in delta(w0, r.export_weights()).items():
        np.testing.assert_allclose(d, lr * (coef * g0[k] + wd * w0[k]), atol=1e-6)

    adam = Runner(spec, OptimSpec("adam"), seed=0)
    adam.train_epoch([batch], lr=0.01)
    w1 = adam.export_weights()
    adam.train_epoch([batch], lr=0.02)
    g1 = _grad(w1, batch)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for k in w0:
        m1, v1 = (1 - b1) * g0[k], (1 - b2) * g0[k] ** 2
        np.testing.assert_allclose(
            w0[k] - w1[k], 0.01 / (1 - b1) * m1 / (np.sqrt(v1) / np.sqrt(1 - b2) + eps),
            atol=2e-6)
        m2, v2 = b1 * m1 + (1 - b1) * g1[k], b2 * v1 + (1 - b2) * g1[k] ** 2
        want = w1[k] - 0.02 / (1 - b1 ** 2) * m2 / (np.sqrt(v2) / np.sqrt(1 - b2 ** 2) + eps)
        np.testing.assert_allclose(adam.export_weights()[k], want, atol=2e-6)


def test_non_finite_loss_raises_and_keeps_the_weights():
    spec = spec_()
    r = Runner(spec, OptimSpec("sgd"), seed=0)
    w = initial_weights(spec, 0)
    w["decoder.bias"][3] = np.inf
    r.load_weights(w)
    with pytest.raises(DivergenceError, match="batch 0"):
        r.train_epoch(lm_batches(), lr=0.1)
    for k, v in r.export_weights().items():
        np.testing.assert_array_equal(v, w[k])


@pytest.mark.parametrize("variant", [GAL, dict(variant="keras3_builtin", input_dropout=0.3,
                                               recurrent_dropout=0.3, output_dropout=0.3)],
                         ids=["keras_impl1", "keras3_builtin"])
def test_training_does_not_depend_on_evaluation_calls(variant):
    def run(evaluate: bool):
        r = Runner(spec_(**variant), OptimSpec("sgd"), seed=1)
        r.train_epoch(lm_batches(), lr=0.5)
        if evaluate:
            mc = [r.predict(lm_batches(), stochastic=True) for _ in range(2)]
            assert np.abs(mc[0] - mc[1]).max() > 1e-4  # MC passes draw fresh masks
            r.predict(lm_batches(), stochastic=False)
        r.train_epoch(lm_batches(), lr=0.5)
        return r.export_weights()

    plain, evaluated = run(False), run(True)
    for k in plain:
        np.testing.assert_array_equal(plain[k], evaluated[k])


def test_eval_active_keeps_the_row_mask_in_standard_evaluation():
    spec = spec_(variant="weightdrop_variational", weight_dropout=0.5, eval_active=True)
    r = Runner(spec, OptimSpec(), seed=0)
    batches = lm_batches()
    a, b = r.predict(batches, stochastic=False), r.predict(batches, stochastic=False)
    assert np.abs(a - b).max() > 1e-4
    assert [c[:2] for c in r.sampler.calls] == [("weight.0", (4 * H, 1))] * 4
    source = NumpyMaskSource(seed=3)
    r.sampler.source = source
    got = r.predict(batches, stochastic=False)
    w = r.export_weights()
    (x1, y1), (x2, y2) = batches
    p1, states = target_probs_ref(spec, w, x1, y1, {"weight.0": source.drawn[0]})
    p2, _ = target_probs_ref(spec, w, x2, y2, {"weight.0": source.drawn[1]}, states)
    np.testing.assert_allclose(got, np.concatenate([p1, p2]), atol=1e-5)
    off = Runner(spec_(variant="weightdrop_variational", weight_dropout=0.5), OptimSpec(), 0)
    np.testing.assert_array_equal(off.predict(batches, False), off.predict(batches, False))
    assert off.sampler.calls == []


def test_keras3_builtin_is_the_stock_layer_with_its_documented_behaviour():
    spec = spec_(variant="keras3_builtin", task="classifier", embedding_dropout=0.2,
                 input_dropout=0.3, recurrent_dropout=0.3, output_dropout=0.3)
    r = Runner(spec, OptimSpec(), seed=0)
    cell = r.net.lstms[0].lstm.cell
    assert isinstance(r.net.lstms[0].lstm, keras.layers.LSTM)
    assert cell.implementation == 1 and cell.dropout_mask_count == 4  # forced by recurrent > 0
    tied = Runner(spec_(variant="keras3_builtin", input_dropout=0.3), OptimSpec(), seed=0)
    assert tied.net.lstms[0].lstm.cell.implementation == 2  # one shared input mask
    rng = np.random.default_rng(0)
    batches = [Batch(rng.integers(0, V, (B, T)), rng.integers(0, 3, (B,))) for _ in range(2)]
    det = r.predict(batches, stochastic=False)
    none = Runner(spec_(task="classifier"), OptimSpec(), seed=0).predict(batches, False)
    np.testing.assert_allclose(det, none, atol=1e-5)
    mc1, mc2 = r.predict(batches, True), r.predict(batches, True)
    assert np.abs(mc1 - mc2).max() > 1e-4 and np.abs(mc1 - det).max() > 1e-4
    # only the embedding mask goes through the suite's sampler
    assert [c[:2] for c in r.sampler.calls] == [("embedding", (V, 1))] * 4


def _builtin_kept_units(recurrent: float, p: float, n: int = 16, batch: int = 64, steps: int = 6):
    """Which input units of the stock layer survive its masks, read off its output.

    Weights make h_t[b, d] ~ 0.64 iff unit d of x_t survived both the i-gate and the g-gate input
    mask of sample b, and ~0 otherwise: W_i = 40*I with b_i = -20 (i ~ 1 iff kept), W_g = I
    (g = 0 iff dropped), forget gate closed, output gate open, W_hh = 0 (recurrent masks have
    nothing to act on). Returns a function training -> kept (steps, batch, n) as booleans."""
    import tensorflow as tf

    spec = ModelSpec(task_kind="lm", vocab_size=V, num_outputs=V, embed_size=n, hidden_size=n,
                     num_layers=1, variant="keras3_builtin", input_dropout=p,
                     recurrent_dropout=recurrent)
    layer = Runner(spec, OptimSpec(), seed=1).net.lstms[0]
    eye, big = np.eye(n, dtype=np.float32), np.float32(40.0)
    w_ih = np.zeros((4 * n, n), np.float32)
    w_ih[:n], w_ih[2 * n:3 * n] = big * eye, eye
    bias = np.zeros(4 * n, np.float32)
    bias[:n], bias[n:2 * n], bias[3 * n:] = -big / 2, -big, big
    layer.set_numpy({"w_ih": w_ih, "w_hh": np.zeros((4 * n, n), np.float32), "bias": bias})
    xs = tf.fill((steps, batch, n), np.float32(1 - p))  # a kept unit enters as exactly 1
    zero = tf.zeros((batch, n))
    call = tf.function(lambda training: layer.forward(xs, zero, zero, training=training)[0],
                       autograph=False)  # compiled, as the runner calls it
    return lambda training: np.abs(call(training).numpy()) > 1e-3


@pytest.mark.parametrize("recurrent", [0.0, 0.3], ids=["tied_input_only", "untied_recurrent"])
def test_keras3_builtin_with_input_dropout_trains_evaluates_and_draws_its_documented_masks(
        recurrent):
    """The stock-layer reference row with input dropout (where stock Keras' cuDNN attempt under
    use_cudnn="auto" is fragile), with and without recurrent dropout: it trains, its standard
    evaluation is deterministic, its MC passes differ, and its masks are those layers.BuiltinLSTM
    and docs/SEMANTICS.md promise: per sample and constant over time, one input mask shared by
    the gates without recurrent dropout, independent per-gate masks with it, none at inference."""
    spec = spec_(variant="keras3_builtin", layers=2, input_dropout=0.5,
                 recurrent_dropout=recurrent, output_dropout=0.3)
    r = Runner(spec, OptimSpec("sgd"), seed=0)
    before = r.export_weights()
    assert np.isfinite(r.train_epoch(lm_batches(), lr=0.5))
    assert max(np.abs(v - before[k]).max() for k, v in r.export_weights().items()) > 0
    std = r.predict(lm_batches(), stochastic=False)
    np.testing.assert_array_equal(std, r.predict(lm_batches(), stochastic=False))
    mc1, mc2 = r.predict(lm_batches(), True), r.predict(lm_batches(), True)
    assert np.isfinite(mc1).all() and np.abs(mc1 - mc2).max() > 1e-4

    p = 0.5
    kept = _builtin_kept_units(recurrent, p)
    first = kept(True)
    assert (first == first[:1]).all(), "the input mask must be the same at every time step"
    assert len({row.tobytes() for row in first[0]}) > first.shape[1] // 2, "one mask per sample"
    # a unit survives iff the i-gate and the g-gate mask both keep it: one shared mask keeps it
    # with probability 1-p, two independent per-gate masks with (1-p)^2
    want = (1 - p) ** 2 if recurrent > 0 else 1 - p
    assert abs(first.mean() - want) < 0.08, (first.mean(), want)
    assert not np.array_equal(kept(True), first), "each call draws new masks"
    assert kept(False).all(), "no input dropout at inference"


def test_bad_arguments_are_refused():
    with pytest.raises(SpecError, match="torch_builtin"):
        Runner(spec_(variant="torch_builtin"), OptimSpec(), seed=0)
    with pytest.raises(ValueError, match="device"):
        Runner(spec_(), OptimSpec(), seed=0, device="tpu")
    with pytest.raises(ValueError, match="optim.name"):
        Runner(spec_(), OptimSpec("rmsprop"), seed=0)
    runner = Runner(spec_(), OptimSpec(), seed=0)
    with pytest.raises(ValueError, match="no batches"):
        runner.predict([], stochastic=False)
    with pytest.raises(ValueError, match="no batches"):
        runner.train_epoch([], lr=0.1)
    with pytest.raises(RuntimeError, match="configure_threads"):
        kb.configure_threads(37)  # TensorFlow is running by now: its pools are fixed
