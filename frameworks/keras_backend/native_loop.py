"""The compiled LSTM loop for Keras (path `cpp`, the default where it covers a call):
recurrence.py's LSTM loops (no mask, the Gal family's tied or per-gate masks on x and h) as one
TensorFlow op forward and one backward (csrc/gal_loop.cc over the shared core
frameworks/csrc/rnn_loop.h), built on first use with TensorFlow's own compile flags and the C++
compiler on PATH ($CXX, else c++).

Why: a tf.while_loop step is a dozen small ops, and at the classifier shape (B 64, T 50, H 128)
their per-op cost is most of a step, for Keras' stock LSTM as for the suite's loops; here each
direction is one op, the input side included.

Same function as recurrence.py's loops up to float rounding (the summation order of the
matmuls): impl 0, 1 and 2 differ there only in the order they compute it, so one op serves all
three. Covered: float32 on CPU. Anything else returns None and the caller runs recurrence.py;
a machine without a compiler, or a failing build, warns once per process and does the same.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import tensorflow as tf

from frameworks import native

NAME = "rds_gal_loop"
SOURCE = Path(__file__).resolve().parent / "csrc" / "gal_loop.cc"

Tensor = tf.Tensor
Loop = tuple[Tensor, Tensor, Tensor]


class NativeLoopUnavailable(RuntimeWarning):
    """The compiled op could not be built or loaded; recurrence.py's loops run instead."""


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
                     "recurrence.py's loops", NativeLoopUnavailable)


def _mask(mask: Tensor | None, width: int) -> Tensor:
    """(Bm, X) tied or (4, Bm, X) per gate -> (Gm, Bm, X); absent -> (0, 1, X)."""
    if mask is None:
        return tf.zeros((0, 1, width), tf.float32)
    return mask[None] if len(mask.shape) == 2 else mask


def on_gpu(x: Tensor) -> bool:
    return "GPU" in (x.device or "").upper() or (
        not x.device and bool(tf.config.list_logical_devices("GPU")))


def run(xs: Tensor, h: Tensor, c: Tensor, kernel: Tensor, u: Tensor, bias: Tensor,
        in_mask: Tensor | None, rec_mask: Tensor | None) -> Loop | None:
    """recurrence.py's LSTM loop result (outputs (T, B, H), h_T, c_T) through the compiled op,
    or None when this call is not covered or the op could not be built."""
    tensors = (xs, h, c, kernel, u, bias, *(m for m in (in_mask, rec_mask) if m is not None))
    if any(t.dtype != tf.float32 for t in tensors) or on_gpu(xs) or not BUILD.available():
        return None
    ops = BUILD.result
    m_in, m_rec = _mask(in_mask, kernel.shape[0]), _mask(rec_mask, u.shape[0])

    @tf.custom_gradient
    def layer(x: Tensor, kernel: Tensor, u: Tensor, bias: Tensor, h0: Tensor, c0: Tensor):
        out, h, c, acts, aux, cs, hm, xm = ops.rds_gal_lstm_forward(
            x, kernel, u, bias, h0, c0, m_in, m_rec, save=True)

        def grad(d_out: Tensor | None, d_h: Tensor | None, d_c: Tensor | None):
            unused = d_out is None or (hasattr(d_out, "op") and d_out.op.type == "ZerosLike")
            d_out = tf.zeros((0, 0, 0), tf.float32) if unused else d_out  # a classifier
            d_h = tf.zeros_like(h) if d_h is None else d_h
            d_c = tf.zeros_like(c) if d_c is None else d_c
            return ops.rds_gal_lstm_backward(d_out, d_h, d_c, x, kernel, u, m_in, m_rec, h0,
                                             out, acts, aux, cs, hm, xm)

        return (out, h, c), grad

    out, h_t, c_t = layer(tf.transpose(xs, (1, 0, 2)), kernel, u, bias, h, c)
    return tf.transpose(out, (1, 0, 2)), h_t, c_t
