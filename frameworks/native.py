"""Compiled speed paths, framework-neutral: the core both bindings include
(csrc/rnn_loop.h), where their builds go, and which instruction set they target.

Each backend builds its own binding with its own toolchain on first use
(torch_backend/fused_loop.py through torch.utils.cpp_extension, keras_backend/native_loop.py
with TensorFlow's compile flags); a build lives in one directory per binding, framework version,
instruction set and source hash under results/native/, so a cache shared between machines never
hands a binary to a CPU that cannot run it, and an edited source builds anew.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CORE = Path(__file__).resolve().parent / "csrc" / "rnn_loop.h"
CACHE = Path(__file__).resolve().parents[1] / "results" / "native"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is absent."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def isa() -> tuple[str, list[str]]:
    """(tag, compiler flags): AVX2 + FMA row kernels where the CPU has both (every x86 CPU since
    2013-15), else plain C++; AVX-512 code generation on top where the CPU has it (Eigen's GEMM
    tiles of the Keras binding ran 87 -> 100 GFLOP/s per thread with it on the bench machine)."""
    flags = cpu_flags()
    if not {"avx2", "fma"} <= flags:
        return "generic", []
    avx2 = ["-mavx2", "-mfma", "-DRDS_AVX2"]
    if {"avx512f", "avx512dq"} <= flags:
        return "avx512", [*avx2, "-mavx512f", "-mavx512dq"]
    return "avx2", avx2


def source_tag(*sources: Path) -> str:
    """A short hash of the sources' contents (the core included by every binding)."""
    digest = hashlib.sha256()
    for path in (CORE, *sources):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
