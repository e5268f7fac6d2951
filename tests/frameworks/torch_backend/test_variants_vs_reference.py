"""Every PyTorch variant against the independent reference (tests/support/torch_reference.py).

With injected masks each variant's logits, final state and gradients must equal the plain
step-by-step LSTM of docs/SEMANTICS.md in float64; the masks must have the contract's names, shapes,
order and values; evaluation and zero rates must be exactly the no-dropout model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frameworks import variants
from frameworks.base import NumpyMaskSource, initial_weights
from frameworks.compute import Compute
from frameworks.spec import (
    Granularity,
    ModelSpec,
    OutputMode,
    Variant,
    rates_used_by,
)
from frameworks.torch_backend import fused_loop
from frameworks.torch_backend.model import DropoutLSTMModel
from frameworks.torch_backend.sampler import MaskSampler
from frameworks.torch_backend.weights import load_weights
from tests.conftest import skip_unless_built
from tests.support.torch_reference import as_masks, as_params, ref_forward, ref_loss
from tests.support.torch_specs import CLS, LM, RATES, B, E, H, T, V, make_spec

# the cell-level variants (semeniuta, zoneout) have their own reference tests:
# test_gru_semeniuta_zoneout.py
VARIANTS = [v for v in Variant if v is not Variant.KERAS3_BUILTIN
            and "cell" not in variants.entry(v).groups]
GAL = [Variant.KERAS_IMPL0, Variant.KERAS_IMPL1, Variant.KERAS_IMPL2]


def make_model(spec: ModelSpec, source=None, seed: int = 0, dtype=torch.float64,
               loop: str = "auto"):
    sampler = MaskSampler(seed)
    sampler.source = source
    model = DropoutLSTMModel(spec, sampler, Compute(loop)).to(dtype)
    load_weights(model, initial_weights(spec, seed))
    return model


def batch(spec: ModelSpec, seed: int = 1, b: int = B):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, (b, T))
    y = rng.integers(0, spec.num_outputs, (b, T) if spec.task_kind is LM else (b,))
    return x, y


def grads_by_name(model: DropoutLSTMModel, spec: ModelSpec) -> dict[str, torch.Tensor]:
    g = {"embedding": model.embedding.weight.grad, "decoder.bias": model.decoder.bias.grad}
    if not spec.tie_weights:
        g["decoder.weight"] = model.decoder.weight.grad
    for k in range(spec.num_layers):
        w_ih, w_hh, b_ih, b_hh = model.rnn_params(k)
        assert b_hh.grad is None and not b_hh.requires_grad and not b_hh.any()
        g.update({f"rnn.{k}.w_ih": w_ih.grad, f"rnn.{k}.w_hh": w_hh.grad})
        g[f"rnn.{k}.bias"] = b_ih.grad
    return g


CASES = [(v, LM, {}) for v in VARIANTS] + [(v, CLS, {}) for v in VARIANTS]
CASES += [
    (v, t, {"granularity": Granularity.BATCH}) for v in [*GAL, Variant.LOCKED] for t in (LM, CLS)
]
CASES += [(v, LM, {"output_mode": OutputMode.NAIVE}) for v in GAL]
CASES += [
    (v, LM, {"tie_weights": True, "embed_size": H}) for v in (Variant.NAIVE, Variant.WEIGHTDROP)
]


@pytest.mark.parametrize("variant,task,kw", CASES, ids=lambda c: getattr(c, "value", str(c)))
def test_forward_state_and_gradients_equal_reference(variant, task, kw):
    check_against_reference(make_spec(variant, task, **kw))


GAL_RATES = [None, {"input": 0.3}, {"recurrent": 0.4}]


@pytest.mark.parametrize("loop", ["cpp", "eager"])
@pytest.mark.parametrize("rates", GAL_RATES, ids=str)
@pytest.mark.parametrize("variant", GAL, ids=lambda v: v.value)
def test_every_gal_path_equals_reference(variant, rates, loop):
    """The compiled loop (the default's choice) and the autograd loop (a machine without a
    compiler), with and without each kind of mask; the model records the path asked for."""
    if loop == "cpp":
        skip_unless_built(fused_loop.BUILD)
    for kw in ({}, {"granularity": Granularity.BATCH}):
        check_against_reference(make_spec(variant, LM, rates, **kw), loop)
    check_against_reference(make_spec(variant, CLS, rates), loop)


def check_against_reference(spec: ModelSpec, loop: str | None = None) -> None:
    variant = spec.variant
    source = NumpyMaskSource(seed=7)
    model = make_model(spec, source, loop=loop or "auto")
    x, y = batch(spec)
    rng = np.random.default_rng(3)
    h0 = torch.tensor(rng.normal(size=(2, B, H)) * 0.5)
    c0 = torch.tensor(rng.normal(size=(2, B, H)) * 0.5)
    logits, (h, c) = model(torch.as_tensor(x), (h0, c0))
    ref_loss(logits, y).backward()

    masks = as_masks([n for n, _, _ in source.calls], source.drawn)
    assert masks or variant is Variant.NONE
    if loop is not None:  # the Gal loop that ran is the one asked for
        assert model.paths.joined() == loop
    p = as_params(initial_weights(spec, 0))
    ref_logits, (hs, cs) = ref_forward(spec, p, masks, x, (h0, c0))
    ref_loss(ref_logits, y).backward()

    torch.testing.assert_close(logits, ref_logits, atol=1e-10, rtol=0)
    torch.testing.assert_close(h, torch.stack(hs), atol=1e-10, rtol=0)
    torch.testing.assert_close(c, torch.stack(cs), atol=1e-10, rtol=0)
    grads = grads_by_name(model, spec)
    assert set(grads) == set(p)
    for name, ref in p.items():
        torch.testing.assert_close(grads[name], ref.grad, atol=1e-10, rtol=0, msg=name)


def _expected_lm(variant: Variant, bm: int = B, naive_out: bool = False) -> list[tuple]:
    """The contract's masks for L=2, written out by hand (rates as in RATES)."""
    e, i, r, w, o = (RATES[k] for k in ("embedding", "input", "recurrent", "weight", "output"))
    wshape = {
        Variant.WEIGHTDROP: (4 * H, H),
        Variant.WEIGHTDROP_VARIATIONAL: (4 * H, 1),
        Variant.WEIGHTDROP_COLUMN: (1, H),
        Variant.WEIGHTDROP_COLUMN_UNTIED: (4, 1, H),
    }
    out = ("output", (B, T, H) if naive_out else (bm, 1, H), o)
    if variant is Variant.NONE:
        return []
    if variant is Variant.TORCH_BUILTIN:
        return [("embedding", (V, 1), e)]
    if variant is Variant.NAIVE:
        layers = [("input.0", (B, T, E), i), ("input.1", (B, T, H), i)]
        return [("embedding", (V, 1), e), *layers, ("output", (B, T, H), o)]
    if variant is Variant.LOCKED:
        return [
            ("embedding", (V, 1), e),
            ("input.0", (bm, 1, E), i),
            ("input.1", (bm, 1, H), i),
            out,
        ]
    if variant in wshape:
        ws = wshape[variant]
        layers = [("input.0", (B, 1, E), i), ("weight.0", ws, w)]
        layers += [("input.1", (B, 1, H), i), ("weight.1", ws, w)]
        return [("embedding", (V, 1), e), *layers, out]
    g = () if variant is Variant.KERAS_IMPL2 else (4,)
    layers = [("input.0", (*g, bm, E), i), ("recurrent.0", (*g, bm, H), r)]
    layers += [("input.1", (*g, bm, H), i), ("recurrent.1", (*g, bm, H), r)]
    return [("embedding", (V, 1), e), *layers, out]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.value)
def test_mask_names_shapes_and_order_per_contract(variant):
    for kw, bm, naive_out in [({}, B, False), ({"granularity": Granularity.BATCH}, 1, False),
                              ({"output_mode": OutputMode.NAIVE}, B, True)]:  # fmt: skip
        if kw and variant not in (*GAL, Variant.LOCKED):
            continue
        if "output_mode" in kw and variant is Variant.LOCKED:
            continue
        model = make_model(make_spec(variant, **kw), dtype=torch.float32)
        model(torch.as_tensor(batch(model.spec)[0]))
        assert model.sampler.calls == _expected_lm(variant, bm, naive_out)
        model.sampler.calls.clear()
        model(torch.as_tensor(batch(model.spec)[0]))  # one draw of each per forward
        assert len(model.sampler.calls) == len(_expected_lm(variant, bm, naive_out))
    cls = make_model(make_spec(variant, CLS), dtype=torch.float32)
    cls(torch.as_tensor(batch(cls.spec)[0]))
    expected = [c for c in _expected_lm(variant) if c[0] != "output"]
    if "output" in rates_used_by(variant):
        expected.append(("output", (B, H), RATES["output"]))
    assert cls.sampler.calls == expected


class Spy:
    """Wraps a sampler's own draw to keep every mask it returns."""

    def __init__(self, sampler: MaskSampler):
        self.draw, self.masks = sampler.draw, []
        sampler.draw = self  # type: ignore[method-assign]

    def __call__(self, name, shape, rate, dtype=torch.float32):
        mask = self.draw(name, shape, rate, dtype=dtype)
        self.masks.append((name, rate, mask.clone()))
        return mask


@pytest.mark.parametrize(
    "variant", [v for v in VARIANTS if v is not Variant.NONE], ids=lambda v: v.value
)
def test_own_masks_values_constant_in_time_and_redrawn_each_call(variant):
    spec = make_spec(variant, hidden_size=16, embed_size=16)
    model = make_model(spec, seed=11)
    spy = Spy(model.sampler)
    x, y = batch(spec)
    logits, _ = model(torch.as_tensor(x))
    first = list(spy.masks)
    for name, rate, mask in first:
        scale = np.float32(1) / np.float32(1 - rate)
        assert set(torch.unique(mask).tolist()) <= {0.0, float(scale)}, name
        assert 0 < (mask == 0).double().mean() < 1, name
    # The model used exactly these masks, the same one at every time step (the reference
    # applies a time-less mask at each step; naive masks carry their own time axis).
    masks = {name: m for name, _, m in first}
    ref_logits, _ = ref_forward(spec, as_params(initial_weights(spec, 11)), masks, x)
    torch.testing.assert_close(logits, ref_logits, atol=1e-10, rtol=0)
    model(torch.as_tensor(x))
    second = spy.masks[len(first) :]
    assert [n for n, _, _ in second] == [n for n, _, _ in first]
    for (name, _, a), (_, _, b) in zip(first, second, strict=True):
        assert not torch.equal(a, b), f"{name} was not redrawn on the next call"
    if variant is Variant.NAIVE:
        m = masks["input.0"]
        assert not all(torch.equal(m[:, 0], m[:, t]) for t in range(1, T))


@pytest.mark.parametrize("variant", [*GAL, Variant.WEIGHTDROP_COLUMN_UNTIED], ids=lambda v: v.value)
def test_untied_variants_draw_distinct_masks_per_gate(variant):
    spec = make_spec(variant, hidden_size=16, embed_size=16)
    model = make_model(spec, seed=2)
    spy = Spy(model.sampler)
    model(torch.as_tensor(batch(spec)[0]))
    kinds = ("weight",) if variant is Variant.WEIGHTDROP_COLUMN_UNTIED else ("input", "recurrent")
    gated = [(n, m) for n, _, m in spy.masks if n.startswith(kinds)]
    assert gated
    for name, m in gated:
        if variant is Variant.KERAS_IMPL2:
            assert m.shape[0] == B, name  # one mask for all gates
        else:
            assert m.shape[0] == 4, name
            assert all(not torch.equal(m[0], m[g]) for g in (1, 2, 3)), name


def _predict_same_weights(spec: ModelSpec, x: np.ndarray, train: bool = False) -> torch.Tensor:
    model = make_model(spec, seed=4, dtype=torch.float32)
    model.train(train)
    with torch.no_grad():
        return model(torch.as_tensor(x))[0]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.value)
@pytest.mark.parametrize("task", [LM, CLS], ids=lambda v: v.value)
def test_eval_and_zero_rates_equal_no_dropout_exactly(variant, task):
    x = batch(make_spec(Variant.NONE, task))[0]
    none = _predict_same_weights(make_spec(Variant.NONE, task), x)
    assert torch.equal(_predict_same_weights(make_spec(variant, task), x), none)
    zero = make_spec(variant, task, rates={})
    assert torch.equal(_predict_same_weights(zero, x, train=True), none)
    if variant is not Variant.NONE:
        assert not torch.equal(_predict_same_weights(make_spec(variant, task), x, True), none)


def test_eval_active_keeps_the_row_mask_in_evaluation():
    spec = make_spec(Variant.WEIGHTDROP_VARIATIONAL, eval_active=True)
    source = NumpyMaskSource(seed=3)
    model = make_model(spec, source).eval()
    x = batch(spec)[0]
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(x))
    assert [c[:2] for c in source.calls] == [("weight.0", (4 * H, 1)), ("weight.1", (4 * H, 1))]
    masks = as_masks([n for n, _, _ in source.calls], source.drawn)
    ref, _ = ref_forward(spec, as_params(initial_weights(spec, 0)), masks, x)
    torch.testing.assert_close(logits, ref.detach(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("task", [LM, CLS], ids=lambda v: v.value)
def test_weightdrop_column_with_batch_one_equals_impl2_recurrent_dropout(task):
    rng = np.random.default_rng(5)
    cols = [(rng.random((1, H)) > 0.5) * 2.0 for _ in range(2)]  # rate 0.5: values 0 or 2
    outs = []
    for variant, kind in [
        (Variant.WEIGHTDROP_COLUMN, "weight"),
        (Variant.KERAS_IMPL2, "recurrent"),
    ]:
        spec = make_spec(variant, task, rates={kind: 0.5})
        model = make_model(spec, NumpyMaskSource(fixed={f"{kind}.{i}": cols[i] for i in (0, 1)}))
        x, y = batch(spec, b=1)
        logits, _ = model(torch.as_tensor(x))
        ref_loss(logits, y).backward()
        assert [c[:2] for c in model.sampler.calls] == [
            (f"{kind}.0", (1, H)),
            (f"{kind}.1", (1, H)),
        ]
        outs.append((logits.detach(), grads_by_name(model, spec)))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-12, rtol=0)
    for name, g in outs[0][1].items():
        torch.testing.assert_close(g, outs[1][1][name], atol=1e-12, rtol=0, msg=name)
