"""The compiled layer for Keras (path `cpp`, the default where it covers a call): the loop of
cells.py -- the LSTM and the GRU (PyTorch's, Keras' reset_after=True, with
its recurrent-side bias), no mask or the Gal family's tied or per-gate masks on x and h, and
every hook that declares its core slots (cells.StepHook.core_slots: Semeniuta's candidate mask
per sequence or per step, Zoneout's updates of h and c or their expectation) -- as one
TensorFlow op forward and one backward (csrc/gal_loop.cc over the shared core
frameworks/csrc/rnn_loop.h), built on first use with TensorFlow's own compile flags and the C++
compiler on PATH ($CXX, else c++).

Why: a tf.while_loop step is a dozen small ops, and at the classifier shape (B 64, T 50, H 128)
their per-op cost is most of a step, for Keras' stock LSTM as for the suite's loops; here each
direction is one op, the input side included.

Same function as the loops of the `tf.function` path up to float rounding (the summation order
of the matmuls): impl 0, 1 and 2 differ there only in the order they compute it, so one op
serves all three. Covered: what compute.py's `cpp` path declares (float32 on CPU). Anything
else returns None and the caller runs the next path; a machine without a compiler, or a
failing build, warns once per process and does the same.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from frameworks import native
from frameworks.compute import core_slots
from frameworks.keras_backend.cells import StepHook

NAME = "rds_gal_loop"
SOURCE = Path(__file__).resolve().parent / "csrc" / "gal_loop.cc"

Tensor = tf.Tensor
Loop = tuple[Tensor, Tensor, Tensor]


class NativeLoopUnavailable(RuntimeWarning):
    """The compiled op could not be built or loaded; the `tf.function` path's loops run
    instead."""


def _locate() -> tuple[Path, list[str]]:
    return native.build_dir(NAME, "tf", tf.__version__, SOURCE)


def _build(directory: Path, isa_flags: list[str]) -> Any:
    """Compile the op library where it is missing and load it, under native.Build's lock."""
    library = directory / f"{NAME}.so"
    if not library.exists():
        # A reader sees no library or a whole one; a compiler orphaned by a killed builder may
        # still write its own partial file.
        partial = directory / f"{NAME}.{os.getpid()}.so"
        command = [native.compiler(), "-shared", "-fPIC", "-O3", "-w", *isa_flags,
                   *tf.sysconfig.get_compile_flags(), str(SOURCE), "-o", str(partial),
                   *tf.sysconfig.get_link_flags()]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if "error" in line]
            raise RuntimeError((errors or done.stderr.splitlines() or ["build failed"])[0])
        os.replace(partial, library)
    return tf.load_op_library(str(library))


BUILD = native.Build(f"{NAME}.so", _locate, _build, "framework.keras_loop=cpp",
                     "the tf.function path's loops", NativeLoopUnavailable)


def _gal(mask: Tensor | None, width: int) -> Tensor:
    """A Gal mask, (Bm, X) tied or (G, Bm, X) per gate -> (Gm, Bm, X); absent -> (0, 1, X)."""
    if mask is None:
        return tf.zeros((0, 1, width), tf.float32)
    return mask[None] if len(mask.shape) == 2 else mask


def _steps(mask: Tensor | float | None, hid: int) -> Tensor:
    """A hook's time-major (Tm, Bm, H) mask, or a scalar expectation as a (1, 1, H) fill;
    absent -> (0, 1, H)."""
    if mask is None:
        return tf.zeros((0, 1, hid), tf.float32)
    if isinstance(mask, float):
        return tf.fill((1, 1, hid), tf.constant(mask, tf.float32))
    return mask


def on_gpu(x: Tensor) -> bool:
    return "GPU" in (x.device or "").upper() or (
        not x.device and bool(tf.config.list_logical_devices("GPU")))


def run(cell: str, xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor, u: Tensor, bias: Tensor,
        bias_hh: Tensor | None, in_mask: Tensor | None, rec_mask: Tensor | None,
        hooks: Sequence[StepHook] = ()) -> Loop | None:
    """cells.run's result (outputs (T, B, H), h_T, c_T) through the compiled op, or None when
    this call is not covered (another device or dtype, no steps, a hook without core slots) or
    the op could not be built: the caller then runs the next path."""
    slots = core_slots(cell, hooks)
    if slots is None or cell not in ("lstm", "gru") or xs.shape[0] == 0:
        return None
    masks = [m for m in (in_mask, rec_mask, *slots.values())
             if m is not None and not isinstance(m, float)]
    tensors = (xs, h, c, kernel, u, bias, *([] if bias_hh is None else [bias_hh]), *masks)
    if any(t.dtype != tf.float32 for t in tensors) or on_gpu(xs) or not BUILD.available():
        return None
    ops, gru, hid = BUILD.result, cell == "gru", u.shape[0]
    step_masks = dict(
        m_in=_gal(in_mask, kernel.shape[0]), m_rec=_gal(rec_mask, hid),
        cand=_steps(slots.get("candidate"), hid), uh=_steps(slots.get("zoneout_h"), hid),
        uc=_steps(slots.get("zoneout_c"), hid))
    no_bias_hh = bias_hh is None
    if no_bias_hh:
        bias_hh = tf.zeros((0,), tf.float32)

    @tf.custom_gradient
    def layer(x: Tensor, kernel: Tensor, u: Tensor, bias: Tensor, bias_hh: Tensor, h0: Tensor,
              c0: Tensor):
        out, h, c, acts, aux, cs, hm, xm = ops.rds_rnn_loop_forward(
            x, kernel, u, bias, bias_hh, h0, c0, **step_masks, save=True, gru=gru)

        def grad(d_out: Tensor | None, d_h: Tensor | None, d_c: Tensor | None):
            unused = d_out is None or (hasattr(d_out, "op") and d_out.op.type == "ZerosLike")
            d_out = tf.zeros((0, 0, 0), tf.float32) if unused else d_out  # a classifier
            d_h = tf.zeros_like(h) if d_h is None else d_h
            d_c = tf.zeros_like(c) if d_c is None else d_c
            return ops.rds_rnn_loop_backward(d_out, d_h, d_c, x, kernel, u, bias_hh,
                                             **step_masks, h0=h0, out=out, acts=acts, aux=aux,
                                             cs=cs, hm=hm, xm=xm, gru=gru)

        return (out, h, c), grad

    out, h_t, c_t = layer(tf.transpose(xs, (1, 0, 2)), kernel, u, bias, bias_hh, h, c)
    return tf.transpose(out, (1, 0, 2)), h_t, c_t
