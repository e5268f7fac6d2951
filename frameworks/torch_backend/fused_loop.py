"""The compiled time loop (path `cpp`, the default where it covers a call): the layer behind
cells.run -- input side, per-step loop and hand-written backward -- as one C++ call each way
(the shared core frameworks/csrc/rnn_loop.h through the binding csrc/fused_loop.cpp), built on
first use.

Why: per-sample masks on h_{t-1} (the Gal family), a candidate mask (Semeniuta) and Zoneout's
state mix cannot be folded into the weights, so no library LSTM runs them; in Python each time
step costs ~10 autograd nodes forward and ~25 kernel launches backward, which at the classifier
shape (B 64, T 50, H 128) costs about as much as the arithmetic. In C++ each thread runs the
whole loop over its rows of the batch (a step: one GEMM tile on oneDNN's brgemm micro-kernel,
one fused pass over the gates), and the input projection and weight gradients are tiled GEMMs
over all steps.

Covered: what compute.py's `cpp` path declares (the LSTM and GRU cells on CPU in
float32/float64, every hook that declares its core slots: candidate dropout, zoneout); no
recurrent mask, a tied (Bm, H) or per-gate (G, Bm, H) one; no input mask, a tied (Bm, D) or
per-gate (G, Bm, D) one. Every Keras order (impl 0/1/2) computes the same function as the
reference loop up to float rounding (the order only changes where the input matmul sits).
Anything else returns None and the caller runs the next path.

The same build carries the mask sampler's one-pass CPU draw (`draw_mask`, csrc/mask_draw.cpp),
used once the build is loaded: torch.rand's values, a tenth of its CPU time.

The build goes to results/native/ (frameworks/native.py: one directory per torch version,
instruction set and source hash), once per machine; a machine without a compiler or ninja, or a
failing build, warns once per process and the caller falls back to the existing loop (never an
error).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from frameworks import native
from frameworks.compute import core_slots
from frameworks.torch_backend import cells, compute

NAME = "rds_fused_loop"
CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = (CSRC / "fused_loop.cpp", CSRC / "mask_draw.cpp")  # the loop; the sampler's draw
GATES = {"lstm": 4, "gru": 3}


class FusedLoopUnavailable(RuntimeWarning):
    """The compiled loop could not be built or loaded; the existing loop runs instead."""


def _ensure_ninja() -> None:
    """torch's builder runs `ninja` from PATH; a pip-installed ninja sits next to this Python
    (a venv used without activating it) or in its package's BIN_DIR."""
    if shutil.which("ninja") is not None:
        return
    places = [str(Path(sys.executable).parent)]
    try:
        import ninja  # type: ignore[import-not-found]

        places.append(str(getattr(ninja, "BIN_DIR", "")))
    except ImportError:
        pass
    for place in places:
        if place and shutil.which("ninja", path=place) is not None:
            os.environ["PATH"] = place + os.pathsep + os.environ.get("PATH", "")
            return  # else cpp_extension raises its own "Ninja is required" error


def _locate() -> tuple[Path, list[str]]:
    return native.build_dir(NAME, "torch", torch.__version__, *SOURCES)


def _build(directory: Path, isa_flags: list[str]) -> None:
    """Build what is missing (ninja) and load the library, under native.Build's lock.

    torch's own FileBaton (an empty `lock` file in the directory) has no pid to judge, and its
    waiter polls for ever; every build here takes native's lock first, so a baton found by
    that lock's holder was left by a killed build: it is removed. torch also remembers each
    extension's build per process and skips the build step on a second call; the rebuild of a
    damaged library is such a call, so that record is dropped first."""
    from torch.utils import cpp_extension

    _ensure_ninja()
    (directory / "lock").unlink(missing_ok=True)
    cpp_extension.JIT_EXTENSION_VERSIONER.entries.pop(NAME, None)
    cpp_extension.load(name=NAME, sources=[str(s) for s in SOURCES],
                       extra_cflags=["-O3", "-fopenmp", *isa_flags], extra_ldflags=["-fopenmp"],
                       build_directory=str(directory), is_python_module=False, verbose=False)


BUILD = native.Build(f"{NAME}.so", _locate, _build, "framework.torch_loop=cpp",
                     "the existing per-step loop", FusedLoopUnavailable)


class _Masks:
    """The masks the C++ loop reads, as logical (T, B, H) / (G, B, H) views with stride 0 on
    broadcast axes (Bm = 1, Tm = 1, a scalar zoneout expectation) and contiguous rows."""

    def __init__(self, m_in: Tensor | None, m_rec: Tensor | None, per_gate: bool,
                 cand: Tensor | None, uh: Tensor | None, uc: Tensor | None):
        self.m_in, self.m_rec, self.per_gate = m_in, m_rec, per_gate
        self.cand, self.uh, self.uc = cand, uh, uc


def _rows(x: Tensor) -> Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def _time_major(mask: Tensor, b: int, t: int, hid: int) -> Tensor:
    """(Bm, Tm, H) -> a (T, B, H) view."""
    return _rows(mask).expand(b, t, hid).permute(1, 0, 2)


def _update(u: Tensor | float | None, like: Tensor, b: int, t: int, hid: int) -> Tensor | None:
    """A zoneout update (B, T, H) mask or scalar expectation, as a (T, B, H) view."""
    if u is None:
        return None
    if isinstance(u, float):
        return torch.full((1, 1, hid), u, dtype=like.dtype, device=like.device).expand(t, b, hid)
    return _time_major(u.to(like.dtype), b, t, hid)


def _masks(cell: str, x: Tensor, hid: int, m_in: Tensor | None, m_rec: Tensor | None,
           hooks: list[cells.StepHook]) -> _Masks | None:
    """The masks in the core's layout, each hook's from the slots it declares; None when a
    hook declares none, two fill one slot, or a GRU would zone out a c it does not carry (the
    caller then runs another path)."""
    b, t = x.shape[0], x.shape[1]
    gates = GATES[cell]
    slots = core_slots(cell, hooks)
    if slots is None:
        return None
    cand = slots.get("candidate")
    cand = None if cand is None else _time_major(cand.to(x.dtype), b, t, hid)
    uh = _update(slots.get("zoneout_h"), x, b, t, hid)
    uc = _update(slots.get("zoneout_c"), x, b, t, hid)
    per_gate = m_rec is not None and m_rec.dim() == 3
    if m_in is not None:  # (Bm, D) tied or (G, Bm, D) per gate -> (1 or G, B, D)
        m = _rows(m_in.to(x.dtype))
        m = m.unsqueeze(0) if m.dim() == 2 else m
        m_in = m.expand(m.shape[0], b, x.shape[2])
    if m_rec is not None:
        m = _rows(m_rec.to(x.dtype))
        m_rec = m.expand(gates, b, hid) if per_gate else m.unsqueeze(0).expand(1, b, hid)
    return _Masks(m_in, m_rec, per_gate, cand, uh, uc)


class _Layer(torch.autograd.Function):
    """(x (B, T, D), w_ih, w_hh, bias, bias_hh, h0, c0) -> (out (B, T, H), h_T, c_T): the whole
    layer, its input side included, in C++; the masks ride along in ctx (they never need a
    gradient)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,  # noqa: D102
                bias_hh: Tensor | None, h0: Tensor, c0: Tensor, masks: _Masks, gru: bool):
        save = any(ctx.needs_input_grad)
        out, h, c, acts, aux, cs, hm, xm = torch.ops.rds_fused_loop.forward(
            x, w_ih, w_hh, bias, bias_hh, masks.m_in, h0, c0, masks.m_rec, masks.per_gate,
            masks.cand, masks.uh, masks.uc, gru, save)
        if save:
            ctx.save_for_backward(x, w_ih, w_hh, h0, out, acts, aux, cs, hm, xm)
            ctx.masks, ctx.gru = masks, gru
        return out, h, c

    @staticmethod
    def backward(ctx: Any, d_out: Tensor, d_h: Tensor, d_c: Tensor):  # noqa: D102, ANN205
        x, w_ih, w_hh, h0, out, acts, aux, cs, hm, xm = ctx.saved_tensors
        m = ctx.masks
        need = ctx.needs_input_grad
        dx, dw_ih, dw_hh, db, db_hh, dh0, dc0 = torch.ops.rds_fused_loop.backward(
            _rows(d_out).permute(1, 0, 2), d_h, d_c, x, w_ih, w_hh, m.m_in, h0, out, acts, aux,
            cs, hm, xm, m.m_rec, m.per_gate, m.cand, m.uh, m.uc, ctx.gru, need[0], need[5],
            need[4])
        return (dx if need[0] else None, dw_ih if need[1] else None,
                dw_hh if need[2] else None, db if need[3] else None,
                db_hh if need[4] else None, dh0 if need[5] else None,
                dc0 if need[6] else None, None, None)


def run(cell: str, x: Tensor, h: Tensor, c: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor,
        bias_hh: Tensor | None, m_in: Tensor | None, m_rec: Tensor | None,
        hooks: list[cells.StepHook]) -> tuple[Tensor, Tensor, Tensor] | None:
    """cells.run's result through the compiled loop, or None when the loop could not be built
    or the call has what the path's entry in compute.py does not declare (no steps, mixed
    dtypes, a hook without slots): the caller then runs the next path."""
    if compute.CPP.why_not(compute.call_for(cell, x, None, hooks)) is not None:
        return None
    if x.shape[1] == 0 or any(w.dtype != x.dtype for w in (w_ih, w_hh, bias)):
        return None
    masks = _masks(cell, x, w_hh.shape[1], m_in, m_rec, hooks)
    if masks is None or not BUILD.available():
        return None
    out, h_t, c_t = _Layer.apply(x, w_ih, w_hh, bias, bias_hh, h.contiguous(), c.contiguous(),
                                 masks, cell == "gru")
    return out, h_t, c_t


def draw_mask(shape: tuple[int, ...], rate: float, scale: float,
              generator: torch.Generator) -> Tensor | None:
    """The mask sampler's float32 CPU draw in one compiled pass (csrc/mask_draw.cpp): the values
    and the generator's state afterwards are those of `torch.rand(shape, generator=generator)
    .ge_(rate).mul_(scale)`, so which of the two drew a mask never shows in a run. None where
    the compiled loop is not loaded in this process (a draw never starts the build) or the
    generator is not a CPU one."""
    if not BUILD.loaded or generator.device.type != "cpu":
        return None
    out = torch.empty(shape, dtype=torch.float32)
    torch.ops.rds_fused_loop.draw_mask_(out, generator, rate, scale)
    return out
