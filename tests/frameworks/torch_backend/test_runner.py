"""The PyTorch `Runner`: weights, optimiser step, loss, predictions, RNG streams, WeightDrop's
module lifecycle, divergence, threads and import hygiene."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from experiments import config as C
from frameworks.base import DivergenceError, NumpyMaskSource, initial_weights
from frameworks.compute import Compute
from frameworks.spec import Batch, ModelSpec, OptimSpec, TaskKind, Variant
from frameworks.torch_backend import MaskSampler, Runner, configure_threads
from tests.conftest import compose_cfg
from tests.support.torch_reference import as_masks, as_params, ref_forward, ref_loss
from tests.support.torch_specs import CLS, LM, H, V, make_spec

SGD = OptimSpec("sgd")


def batches(spec, n: int = 2, b: int = 3, t: int = 6, seed: int = 1) -> list[Batch]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.integers(0, V, (b, t))
        y = rng.integers(0, spec.num_outputs, (b, t) if spec.task_kind is LM else (b,))
        out.append(Batch(x, y))
    return out


def test_weights_round_trip_split_bias_and_refuse_bad_shapes():
    spec = make_spec(Variant.WEIGHTDROP, tie_weights=True, embed_size=H)
    runner = Runner(spec, SGD, seed=0)
    w = initial_weights(spec, 9)
    runner.load_weights(w)
    out = runner.export_weights()
    assert set(out) == set(w) and "decoder.weight" not in out
    for k, v in w.items():
        np.testing.assert_array_equal(out[k], v, err_msg=k)
    w_ih, w_hh, b_ih, b_hh = runner.model.rnn_params(1)
    np.testing.assert_array_equal(b_ih.detach().numpy(), w["rnn.1.bias"])
    assert not b_hh.detach().any()
    bad = dict(w, **{"rnn.0.w_hh": np.zeros((4 * H, H + 1), np.float32)})
    with pytest.raises(ValueError, match="rnn.0.w_hh"):
        runner.load_weights(bad)
    with pytest.raises(ValueError, match="missing"):
        runner.load_weights({k: v for k, v in w.items() if k != "embedding"})
    default = Runner(spec, SGD, seed=9).export_weights()  # starts from initial_weights(spec, seed)
    for k, v in w.items():
        np.testing.assert_array_equal(default[k], v, err_msg=k)


@pytest.mark.parametrize("variant", [Variant.KERAS_IMPL1, Variant.WEIGHTDROP_COLUMN_UNTIED])
def test_train_epoch_loss_carried_state_and_clipped_sgd_step_equal_reference(variant):
    """Two LM batches: loss = mean token CE with the state carried over (detached), and the
    update is w - lr * clip(grad) per batch, all against the float64 reference."""
    spec = make_spec(variant)
    clip, lr = 0.05, 0.7  # the gradient norm is about 0.2: clipping acts
    runner = Runner(spec, OptimSpec("sgd", clip_norm=clip), seed=3)
    source = NumpyMaskSource(seed=4)
    runner.sampler.source = source
    data = batches(spec)
    loss = runner.train_epoch(data, lr)

    p = as_params(initial_weights(spec, 3))
    names = [n for n, _, _ in source.calls]
    per = len(names) // 2
    state, losses = None, []
    for i, (x, y) in enumerate(data):
        masks = as_masks(names[i * per : (i + 1) * per], source.drawn[i * per : (i + 1) * per])
        logits, (hs, cs) = ref_forward(spec, p, masks, x, state)
        step_loss = ref_loss(logits, y)
        losses.append(step_loss.item())
        grads = torch.autograd.grad(step_loss, list(p.values()))
        norm = torch.sqrt(sum((g**2).sum() for g in grads))
        scale = min(1.0, clip / (norm.item() + 1e-6))
        assert scale < 1
        with torch.no_grad():
            for t, g in zip(p.values(), grads, strict=True):
                t -= lr * scale * g
        state = ([h.detach() for h in hs], [c.detach() for c in cs])
    assert loss == pytest.approx(np.mean(losses), abs=1e-6)
    out = runner.export_weights()
    for k, t in p.items():
        np.testing.assert_allclose(out[k], t.detach().numpy(), atol=2e-6, err_msg=k)


def test_lm_predict_is_target_probability_with_state_carried_and_reset_per_call():
    spec = make_spec(Variant.LOCKED)
    runner = Runner(spec, SGD, seed=5)
    data = batches(spec)
    probs = runner.predict(data, stochastic=False)
    assert probs.shape == (2 * 3 * 6,)
    p = as_params(initial_weights(spec, 5))
    state, expected = None, []
    for x, y in data:
        logits, state = ref_forward(spec, p, {}, x, state)
        pr = torch.softmax(logits, -1).gather(-1, torch.as_tensor(y)[..., None])
        expected.append(pr.detach().reshape(-1).numpy())
    np.testing.assert_allclose(probs, np.concatenate(expected), atol=1e-6)
    np.testing.assert_array_equal(runner.predict(data, stochastic=False), probs)
    mc1, mc2 = runner.predict(data, True), runner.predict(data, True)
    assert not np.array_equal(mc1, mc2) and not np.array_equal(mc1, probs)


def test_classifier_predict_gives_class_probabilities_and_per_example_loss():
    spec = make_spec(Variant.KERAS_IMPL0, CLS)
    runner = Runner(spec, OptimSpec("adam", weight_decay=1e-4), seed=1)
    data = batches(spec, n=3, b=4)
    probs = runner.predict(data, stochastic=True)
    assert probs.shape == (12, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    p = as_params(initial_weights(spec, 1))
    ref = np.mean([ref_loss(ref_forward(spec, p, {}, x)[0], y).item() for x, y in data])
    runner.sampler.source = lambda name, shape, rate: np.ones(shape, np.float32)
    assert runner.train_epoch(data, lr=0.0) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize(
    "variant", [Variant.KERAS_IMPL2, Variant.TORCH_BUILTIN, Variant.WEIGHTDROP_VARIATIONAL]
)
def test_seeded_training_ignores_how_many_evaluations_happened(variant):
    kw = {"eval_active": True} if variant is Variant.WEIGHTDROP_VARIATIONAL else {}
    spec = make_spec(variant, rates={"input": 0.5, "recurrent": 0.5, "weight": 0.5}, **kw)
    data = batches(spec)
    a, b, c = (Runner(spec, SGD, seed=2) for _ in range(3))
    a.train_epoch(data, 1.0)
    a.predict(data, True)
    a.predict(data, False)
    a.train_epoch(data, 1.0)
    b.train_epoch(data, 1.0)
    b.train_epoch(data, 1.0)
    for k, v in a.export_weights().items():
        np.testing.assert_array_equal(v, b.export_weights()[k], err_msg=k)
    c.train_epoch(data, 1.0)
    torch.manual_seed(123)  # the global RNG is seeded by the runner, not by the caller
    c2 = Runner(spec, SGD, seed=2)
    c2.train_epoch(data, 1.0)
    np.testing.assert_array_equal(c.predict(data, True), c2.predict(data, True))
    other = Runner(spec, SGD, seed=3)
    other.load_weights(initial_weights(spec, 2))
    other.train_epoch(data, 1.0)
    assert not np.array_equal(
        other.export_weights()["rnn.0.w_hh"], c.export_weights()["rnn.0.w_hh"]
    )


def test_torch_builtin_uses_library_dropout_between_layers_only():
    spec = make_spec(Variant.TORCH_BUILTIN, rates={"input": 0.5})
    runner = Runner(spec, SGD, seed=0)
    data = batches(spec)
    det = runner.predict(data, False)
    assert not np.array_equal(runner.predict(data, True), det)
    assert runner.sampler.calls == []
    first, second = runner.train_epoch(data, 0.0), runner.train_epoch(data, 0.0)
    assert first != second  # lr 0: only nn.LSTM's masks changed, its stream moves on
    assert runner.model.rnn.dropout == 0.5 and runner.model.rnn.num_layers == 2
    none = Runner(make_spec(Variant.NONE), SGD, seed=0)
    np.testing.assert_array_equal(none.predict(data, False), det)


def test_weightdrop_survives_train_eval_train_state_dict_and_deepcopy():
    spec = make_spec(Variant.WEIGHTDROP)
    runner = Runner(spec, SGD, seed=0)
    data = batches(spec)
    runner.train_epoch(data, 0.5)
    runner.model.eval()
    det = runner.predict(data, False)
    runner.model.train()
    runner.train_epoch(data, 0.5)
    model = runner.model
    assert isinstance(model.layers[0].rnn.weight_hh_l0, torch.nn.Parameter)
    assert any(p is model.layers[0].rnn.weight_hh_l0 for p in model.parameters())
    state = model.state_dict()
    assert set(state) == set(Runner(spec, SGD, seed=1).model.state_dict())
    fresh = Runner(spec, SGD, seed=1)
    fresh.model.load_state_dict(state)
    twin = copy.deepcopy(model)
    np.testing.assert_array_equal(fresh.predict(data, False), runner.predict(data, False))
    assert not np.array_equal(det, runner.predict(data, False))  # the second epoch trained
    x = torch.as_tensor(data[0].x)
    for m in (model, twin):
        m.sampler.calls.clear()
        m.sampler.source = NumpyMaskSource(seed=8)
        m.train()
        logits, _ = m(x)
        logits.sum().backward()
        weight_draws = [c for c in m.sampler.calls if c[0].startswith("weight")]
        assert weight_draws == [("weight.0", (4 * H, H), 0.5), ("weight.1", (4 * H, H), 0.5)]
    assert twin.layers[0].rnn.weight_hh_l0.grad is not None
    torch.testing.assert_close(model(x)[0], twin(x)[0])  # same injected seed, same weights


def test_divergence_raises_on_the_first_non_finite_loss():
    spec = make_spec(Variant.NAIVE, TaskKind.CLASSIFIER)
    runner = Runner(spec, SGD, seed=0)
    w = initial_weights(spec, 0)
    w["decoder.bias"][0] = np.inf
    runner.load_weights(w)
    with pytest.raises(DivergenceError, match="batch 0"):
        runner.train_epoch(batches(spec), 1.0)


def test_optimiser_and_threads_are_validated():
    with pytest.raises(ValueError, match="rmsprop"):
        Runner(make_spec(Variant.NONE), OptimSpec("rmsprop"), seed=0)
    with pytest.raises(ValueError, match="threads"):
        configure_threads(0)
    before = torch.get_num_threads()
    configure_threads(1)
    assert torch.get_num_threads() == 1
    configure_threads(before)


def test_sampler_refuses_zero_rates_and_misshapen_injected_masks():
    sampler = MaskSampler(0)
    with pytest.raises(ValueError, match="rate 0 draws nothing"):
        sampler.draw("input.0", (2, 3), 0.0)
    sampler.source = lambda name, shape, rate: np.ones((1, 1), np.float32)
    with pytest.raises(ValueError, match="input.0"):
        sampler.draw("input.0", (2, 3), 0.5)
    assert sampler.calls == [("input.0", (2, 3), 0.5)]
    with pytest.raises(ValueError, match="framework.torch_loop='fast' is not one of: auto, "):
        Runner(ModelSpec("lm", V, V, 4, H, 1, "none"), OptimSpec("sgd"), 0, compute=Compute("fast"))


def test_importing_the_backend_never_imports_tensorflow_or_keras():
    code = (
        "import sys, frameworks.torch_backend as b; from frameworks.base import load_backend;"
        "assert load_backend('torch') is b and callable(b.configure_threads);"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_root()))


def _root():
    from pathlib import Path

    return Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("compute", [{"loop": "eager"},  # compiling takes a minute or two:
                                     pytest.param({"compile": True}, marks=pytest.mark.e2e)],
                         ids=str)
def test_compute_switches_change_the_numbers_by_rounding_only(compute):
    """framework.torch_loop / torch_compile are left out of the config hash: a run with either
    must equal the default run but for float rounding, so its completed twin may stand in."""
    spec = ModelSpec("lm", V, V, 4, H, 1, "keras_impl1", input_dropout=0.3,
                     recurrent_dropout=0.3)
    rng = np.random.default_rng(0)
    data = [Batch(rng.integers(0, V, (2, 4)), rng.integers(0, V, (2, 4))) for _ in range(3)]
    results = []
    for options in ({}, compute):
        r = Runner(spec, OptimSpec("sgd", clip_norm=1.0), seed=0, compute=Compute(**options))
        loss = r.train_epoch(data, 0.5)
        results.append((loss, r.export_weights(), r.predict(data, True)))
    (loss, weights, probs), (loss2, weights2, probs2) = results
    np.testing.assert_allclose(loss2, loss, rtol=1e-5)
    np.testing.assert_allclose(probs2, probs, rtol=1e-5)
    for name, value in weights.items():
        np.testing.assert_allclose(weights2[name], value, rtol=1e-5, atol=1e-7)
    cfg = compose_cfg([])
    switched = compose_cfg([f"framework.torch_{k}={str(v).lower()}" for k, v in compute.items()])
    assert C.config_hash(switched) == C.config_hash(cfg)
