"""Optional torch.compile of the autograd time loops, with a persistent cache under results/.

Off by default: on the 2-core CPU this suite targets, compiling the unrolled loop took 50-90 s
per shape and ran slower than eager (see the backend report). `framework.torch_compile=true`
turns it on (the `compile` path of frameworks/torch_backend/compute.py). Compiled functions are
made lazily and memoised per function.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable[..., object])

CACHE_DIR = Path(__file__).resolve().parents[2] / "results" / "torch_compile_cache"
_compiled: dict[Callable[..., object], Callable[..., object]] = {}


def compiled(fn: F) -> F:
    """`fn`'s compiled form, made on first use."""
    if fn not in _compiled:
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(CACHE_DIR))
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        _compiled[fn] = torch.compile(fn, dynamic=False)
    return _compiled[fn]  # type: ignore[return-value]
