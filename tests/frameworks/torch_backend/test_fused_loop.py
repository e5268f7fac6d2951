"""The compiled loop (framework.torch_loop=cpp, frameworks/torch_backend/fused_loop.py) against
the reference autograd loop cells.run, and its fallback.

- Loop level: every covered combination (LSTM / GRU; no, tied or per-gate recurrent mask;
  no, tied or per-gate input mask; per-sample or batch-shared masks; candidate dropout with a
  mask per sequence or per step; zoneout with drawn masks or the evaluation expectation), in
  float64 (1e-10) and float32 (1e-5 relative to each tensor's largest entry, the float rounding
  of a different summation order). H = 19 runs both the 8-wide lanes and the single ones; H = 70
  several of the weights' 32-column panels and a partial one.
- Model level: every step-loop variant, both cells, both task kinds, granularity sample and
  batch (and Semeniuta's per_step), with the same injected masks: logits, final state and every
  gradient under `cpp` equal those under `eager`, and the run records the path `cpp`.
- The mask sampler's compiled draw: the masks and the generator's state of torch.rand's draw,
  across the twister's state boundaries and at a uniform exactly on the threshold.
- Fallback: with the build made to fail (no compiler), one warning, then the existing loop's
  numbers, recorded as that loop's path.
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
import pytest
import torch

from frameworks import native
from frameworks.base import NumpyMaskSource, initial_weights
from frameworks.compute import Compute
from frameworks.sampling import keep_scale
from frameworks.spec import Granularity, ModelSpec, OutputMode, TaskKind, Variant, rates_used_by
from frameworks.torch_backend import cells, fused_loop
from frameworks.torch_backend.hooks import CandidateDropout, Zoneout
from frameworks.torch_backend.model import DropoutLSTMModel
from frameworks.torch_backend.sampler import MaskSampler
from frameworks.torch_backend.weights import load_weights
from tests.conftest import skip_unless_built

# one xdist worker for the compiled builds in results/native (this, test_native_build.py,
# keras_backend/test_native_loop.py): their first builds and g++ do not race each other
pytestmark = pytest.mark.xdist_group("native_build")

LM, CLS = TaskKind.LANGUAGE_MODEL, TaskKind.CLASSIFIER
needs_build = pytest.mark.usefixtures("compiled")


@pytest.fixture
def compiled() -> None:
    """The compiled loop (first build: ~15-40 s); skipped where it cannot be built."""
    skip_unless_built(fused_loop.BUILD)


# ---- loop level ----------------------------------------------------------------------------
def _mask(gen: torch.Generator, dtype: torch.dtype, *shape: int, p: float = 0.3) -> torch.Tensor:
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) > p).to(dtype) / (1 - p)


def _loop_case(cell: str, rec: str, inp: str, bm: str, cand: str, zone: str,
               dtype: torch.dtype, b: int = 3, t: int = 5, d: int = 7, hid: int = 19):
    """Inputs of one layer's loop, parameters requiring grad, masks and hooks as the layer
    builds them."""
    gen = torch.Generator().manual_seed(zlib.crc32(repr((cell, rec, inp, bm, cand, zone)).encode()))
    g = 4 if cell == "lstm" else 3

    def param(*shape: int, scale: float = 0.5) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype) \
            .requires_grad_()

    x, h0, c0 = param(b, t, d, scale=2.0), param(b, hid), param(b, hid)
    w_ih, w_hh, bias = param(g * hid, d), param(g * hid, hid), param(g * hid)
    bias_hh = param(g * hid) if cell == "gru" else None
    m = b if bm == "sample" else 1
    m_in = {"none": None, "tied": _mask(gen, dtype, m, d), "gate": _mask(gen, dtype, g, m, d)}[inp]
    m_rec = {"none": None, "tied": _mask(gen, dtype, m, hid),
             "gate": _mask(gen, dtype, g, m, hid)}[rec]
    hooks: list[cells.StepHook] = []
    if cand != "none":
        hooks.append(CandidateDropout(_mask(gen, dtype, m, t if cand == "step" else 1, hid)))
    if zone == "train":
        u_c = (_mask(gen, dtype, b, t, hid, p=0.5) != 0).to(dtype) if cell == "lstm" else None
        hooks.append(Zoneout([(_mask(gen, dtype, b, t, hid, p=0.5) != 0).to(dtype), u_c]))
    elif zone == "eval":
        hooks.append(Zoneout([0.75, 0.5 if cell == "lstm" else None]))
    params = [x, h0, c0, w_ih, w_hh, bias] + ([bias_hh] if bias_hh is not None else [])
    return (cell, x, h0, c0, w_ih, w_hh, bias, bias_hh, m_in, m_rec, hooks), params


def _run_both(args: tuple, params: list[torch.Tensor]):
    """(outputs and gradients) of cells.run and of the compiled loop, for one loss using all
    three outputs."""
    results = []
    for fn in (cells.run, fused_loop.run):
        res = fn(*args)
        assert res is not None, "this combination should be covered by the compiled loop"
        out, h, c = res
        weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
        loss = (out * weight).sum() + (h * h).sum() + c.sin().sum()
        results.append([out, h, c, *torch.autograd.grad(loss, params, allow_unused=True)])
    return results


def _assert_close(got: torch.Tensor, ref: torch.Tensor, rel: float, name: str) -> None:
    scale = ref.abs().max().item() or 1.0
    err = (got - ref).abs().max().item()
    assert err <= rel * scale, f"{name}: max error {err:.3g} > {rel:g} * {scale:.3g}"


NAMES = ["out", "h_T", "c_T", "d_x", "d_h0", "d_c0", "d_w_ih", "d_w_hh", "d_bias", "d_bias_hh"]
GAL_LOOPS = [(rec, inp) for rec in ("none", "tied", "gate") for inp in ("none", "tied", "gate")]


@needs_build
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-10), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("bm", ["sample", "batch"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gal_masks_equal_reference(cell, bm, dtype, rel):
    """Every recurrent x input mask form (impl 0/1 per gate, impl 2 tied, and either alone)."""
    for rec, inp in GAL_LOOPS:
        args, params = _loop_case(cell, rec, inp, bm, "none", "none", dtype)
        ref, got = _run_both(args, params)
        for name, a, r in zip(NAMES, got, ref, strict=False):
            if r is not None:
                _assert_close(a, r, rel, f"{cell} rec={rec} in={inp} {bm}: {name}")


@needs_build
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_weights_wider_than_a_panel_equal_reference(cell):
    """H 70, D 45 in float32: the binding's weights in 32-column panels, several per matrix (and
    per gate) and a partial last one, with every mask form and both hooks."""
    for rec, inp in GAL_LOOPS:
        args, params = _loop_case(cell, rec, inp, "sample", "step", "train", torch.float32,
                                  b=4, t=6, d=45, hid=70)
        ref, got = _run_both(args, params)
        for name, a, r in zip(NAMES, got, ref, strict=False):
            if r is not None:
                _assert_close(a, r, 1e-5, f"{cell} rec={rec} in={inp} H 70: {name}")


HOOK_CASES = [("seq", "none"), ("step", "none"), ("none", "train"), ("none", "eval"),
              ("step", "train")]


@needs_build
@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-10), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("cand,zone", HOOK_CASES, ids=[f"{c}-{z}" for c, z in HOOK_CASES])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_hooks_equal_reference(cell, cand, zone, dtype, rel):
    """Candidate dropout and zoneout, alone, together, and with Gal masks around them."""
    for rec, inp, bm in (("none", "none", "sample"), ("tied", "tied", "batch"),
                         ("gate", "gate", "sample")):
        args, params = _loop_case(cell, rec, inp, bm, cand, zone, dtype)
        ref, got = _run_both(args, params)
        for name, a, r in zip(NAMES, got, ref, strict=False):
            if r is not None:
                _assert_close(a, r, rel, f"{cell} {cand}/{zone} rec={rec}: {name}")


@needs_build
def test_no_grad_forward_and_activation_extremes():
    """Without autograd (evaluation) nothing is saved and the outputs are the same; large
    pre-activations (saturated gates, the exp clamp) stay finite and equal the reference."""
    args, _ = _loop_case("lstm", "tied", "tied", "sample", "seq", "eval", torch.float32)
    big = list(args)
    big[1] = args[1].detach() * 40.0  # x: pre-activations far beyond +-88
    with torch.no_grad():
        for case in (args, tuple(big)):
            ref, got = cells.run(*case), fused_loop.run(*case)
            for name, a, r in zip(NAMES, got, ref, strict=False):
                assert torch.isfinite(a).all()
                _assert_close(a, r, 1e-5, name)


@needs_build
def test_uncovered_calls_return_none():
    """A hook the compiled loop does not know, two hooks of one kind, an unsupported dtype:
    None, so the layer runs the existing loop."""
    args, _ = _loop_case("lstm", "tied", "tied", "sample", "none", "none", torch.float32)

    class Other(cells.StepHook):
        pass

    for hooks in ([Other()], [CandidateDropout(torch.ones(3, 1, 19))] * 2):
        assert fused_loop.run(*args[:-1], hooks) is None
    half = [a.half() if isinstance(a, torch.Tensor) else a for a in args[:-1]]
    assert fused_loop.run(*half, []) is None


# ---- model level ---------------------------------------------------------------------------
B, T, V, E, H = 3, 6, 20, 5, 11
RATES = {"embedding": 0.25, "input": 0.3, "recurrent": 0.4, "output": 0.2,
         "zoneout_cell": 0.5, "zoneout_hidden": 0.75}  # zoneout: exact 0/1 updates


def make_spec(variant: str, task: TaskKind, cell: str, **kw) -> ModelSpec:
    used = {k: p for k, p in RATES.items() if k in rates_used_by(Variant(variant))}
    if cell == "gru":
        used.pop("zoneout_cell", None)
    return ModelSpec(task_kind=task, vocab_size=V, num_outputs=V if task is LM else 3,
                     embed_size=E, hidden_size=H, num_layers=2, variant=variant, cell=cell,
                     init_scale=0.4, **{f"{k}_dropout": p for k, p in used.items()}, **kw)


def forward_backward(spec: ModelSpec, loop: str, train: bool = True):
    """Logits, final state and named gradients of one training step with masks from a fixed
    numpy source; the path the model records."""
    sampler = MaskSampler(0)
    sampler.source = NumpyMaskSource(seed=7)
    model = DropoutLSTMModel(spec, sampler, Compute(loop)).to(torch.float64)
    load_weights(model, initial_weights(spec, 0))
    model.train(train)
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.integers(0, V, (B, T)))
    y = torch.as_tensor(rng.integers(0, spec.num_outputs, (B, T) if spec.task_kind is LM
                                     else (B,)))
    h0 = torch.tensor(rng.normal(size=(2, B, H)) * 0.5)
    c0 = torch.tensor(rng.normal(size=(2, B, H)) * 0.5)
    logits, (h, c) = model(x, (h0, c0))
    torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)) \
        .backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return (logits, h, c), grads, model.paths.joined()


STEP_LOOP = ["keras_impl0", "keras_impl1", "keras_impl2", "semeniuta", "zoneout"]
MODEL_CASES = [(v, task, cell, {}) for v in STEP_LOOP for task in (LM, CLS)
               for cell in ("lstm", "gru")]
MODEL_CASES += [(v, task, cell, {"granularity": Granularity.BATCH})
                for v in ("keras_impl0", "keras_impl1", "keras_impl2", "semeniuta")
                for task in (LM, CLS) for cell in ("lstm", "gru")]
MODEL_CASES += [("semeniuta", LM, cell, {"per_step": True}) for cell in ("lstm", "gru")]
MODEL_CASES += [("semeniuta", CLS, "lstm", {"per_step": True, "granularity": Granularity.BATCH})]
MODEL_CASES += [(v, LM, "lstm", {"output_mode": OutputMode.NAIVE})
                for v in ("keras_impl0", "keras_impl2")]


def _case_id(case: tuple) -> str:
    v, task, cell, kw = case
    knobs = "-".join(f"{k}={getattr(x, 'value', x)}" for k, x in kw.items())
    return f"{v}-{task.value}-{cell}" + (f"-{knobs}" if knobs else "")


@needs_build
@pytest.mark.parametrize("case", MODEL_CASES, ids=[_case_id(c) for c in MODEL_CASES])
def test_model_cpp_equals_eager(case):
    variant, task, cell, kw = case
    spec = make_spec(variant, task, cell, **kw)
    (ref, ref_grads, ref_path) = forward_backward(spec, "eager")
    (got, got_grads, got_path) = forward_backward(spec, "cpp")
    assert (ref_path, got_path) == ("eager", "cpp")
    for name, a, r in zip(("logits", "h", "c"), got, ref, strict=True):
        _assert_close(a, r, 1e-10, name)
    assert set(got_grads) == set(ref_grads)
    for name, r in ref_grads.items():
        _assert_close(got_grads[name], r, 1e-10, name)


@needs_build
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_evaluation_and_mc(cell):
    """Evaluation (zoneout's expectation; Gal without masks runs the fused layer) and MC
    passes (masks, no autograd) give the eager numbers."""
    for variant, train in (("zoneout", False), ("keras_impl0", True), ("semeniuta", True)):
        spec = make_spec(variant, LM, cell)
        with torch.no_grad():
            ref, _ = _logits(spec, train, "eager")
            got, path = _logits(spec, train, "auto")
        assert path == "cpp"
        _assert_close(got, ref, 1e-10, f"{variant} train={train}")


def _logits(spec: ModelSpec, train: bool, loop: str) -> tuple[torch.Tensor, str]:
    sampler = MaskSampler(0)
    sampler.source = NumpyMaskSource(seed=7)
    model = DropoutLSTMModel(spec, sampler, Compute(loop)).to(torch.float64)
    load_weights(model, initial_weights(spec, 0))
    model.train(train)
    x = torch.as_tensor(np.random.default_rng(1).integers(0, V, (B, T)))
    return model(x)[0], model.paths.joined()


def test_recorded_path_is_none_without_a_step_loop():
    """A model that only ran fused layers records "none", on every loop setting."""
    for loop in ("auto", "cpp", "eager"):
        assert forward_backward(make_spec("none", LM, "lstm"), loop)[2] == "none"


# ---- the sampler's draw --------------------------------------------------------------------
# around the twister's 624-word state: inside one, exactly one, one past, a twist mid-draw
DRAW_SHAPES = [(0,), (1,), (623,), (624,), (625,), (1249,), (3, 7), (20, 650), (64, 50, 128)]


@needs_build
@pytest.mark.parametrize("rate", [0.1, 0.25, 1 / 3, 0.7, 0.999])
def test_compiled_mask_draw_equals_torch_rand_and_leaves_the_same_generator_state(rate):
    scale = float(keep_scale(rate))
    ours, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for shape in DRAW_SHAPES:  # one after another from the same two generators
        want = torch.rand(shape, generator=theirs).ge_(rate).mul_(scale)
        got = fused_loop.draw_mask(shape, rate, scale, ours)
        assert got is not None and torch.equal(got, want), shape
        assert torch.equal(ours.get_state(), theirs.get_state()), shape


@needs_build
def test_compiled_mask_draw_thresholds_in_float32_as_torch_does():
    """A uniform exactly at the rate is kept, and so is one a double rate just above it would
    drop: `ge_` with a Python float compares in float32."""
    u0 = float(torch.rand(1000, generator=torch.Generator().manual_seed(3))[500])
    for rate in (u0, u0 + 1e-12):  # the second rounds to u0 in float32
        want = torch.rand(1000, generator=torch.Generator().manual_seed(3)).ge_(rate).mul_(2.0)
        got = fused_loop.draw_mask((1000,), rate, 2.0, torch.Generator().manual_seed(3))
        assert got is not None and torch.equal(got, want) and got[500] == 2.0


@needs_build
def test_the_sampler_draws_the_same_masks_with_or_without_the_compiled_draw(monkeypatch):
    def draws() -> list[torch.Tensor]:
        sampler = MaskSampler(seed=11)
        out = [sampler.draw("zoneout_hidden.0", (64, 50, 128), 0.25),
               sampler.draw("recurrent.0", (4, 64, 128), 0.5)]
        sampler.use("eval")
        return [*out, sampler.draw("output", (5, 700), 0.1)]

    assert fused_loop.draw_mask((1,), 0.5, 2.0, torch.Generator()) is not None
    compiled = draws()
    monkeypatch.setattr(fused_loop, "BUILD", fused_loop.BUILD.fresh())  # not loaded here
    assert fused_loop.draw_mask((1,), 0.5, 2.0, torch.Generator()) is None
    assert all(torch.equal(a, b) for a, b in zip(compiled, draws(), strict=True))


# ---- fallback ------------------------------------------------------------------------------
@pytest.mark.parametrize("loop", ["auto", "cpp"])
def test_failed_build_warns_once_and_runs_the_existing_loop(monkeypatch, tmp_path, loop):
    """No compiler: one FusedLoopUnavailable warning for the whole process, never an error,
    whether the compiled path was the default's choice or asked for; the numbers and the
    recorded path are those of the next path, the autograd loop."""
    monkeypatch.setattr(fused_loop, "BUILD", fused_loop.BUILD.fresh())
    monkeypatch.setattr(native, "CACHE", tmp_path / "native")
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    cases = [("keras_impl2", "lstm", "eager"), ("keras_impl0", "gru", "eager"),
             ("zoneout", "lstm", "eager")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for variant, cell, fallback in cases:
            spec = make_spec(variant, CLS, cell)
            ref, ref_grads, _ = forward_backward(spec, fallback)
            got, got_grads, path = forward_backward(spec, loop)
            assert path == fallback
            for a, r in zip(got, ref, strict=True):
                assert torch.equal(a, r)
            assert all(torch.equal(got_grads[n], g) for n, g in ref_grads.items())
    ours = [w for w in caught if issubclass(w.category, fused_loop.FusedLoopUnavailable)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert len(caught) == 1, [str(w.message) for w in caught]  # nothing else from the build
    assert "no-such-compiler" in str(ours[0].message)
    assert not fused_loop.BUILD.available()  # decided once per process: no second attempt
