"""Compiled speed paths, framework-neutral: the core both bindings include
(csrc/rnn_loop.h), where their builds go, and which instruction set they target.

Each backend builds its own binding with its own toolchain on first use
(torch_backend/fused_loop.py through torch.utils.cpp_extension, keras_backend/native_loop.py
with TensorFlow's compile flags); a build lives in one directory per binding, framework version,
instruction set and source hash under results/native/, so a cache shared between machines never
hands a binary to a CPU that cannot run it, and an edited source builds anew. A build is tried
once per process (`Build`): where it fails -- no compiler, a compile error -- one warning says
why and the caller runs its framework's existing loop, never an error.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def compiler() -> str:
    """The C++ compiler a build runs ($CXX, else c++, as torch's builder does); where it is not on
    PATH, a RuntimeError that names it, for the fallback's warning."""
    name = os.environ.get("CXX", "c++")
    if shutil.which(name) is None:
        raise RuntimeError(f"no C++ compiler: {name!r} not found")
    return name


def build_dir(name: str, framework: str, version: str, *sources: Path) -> tuple[Path, list[str]]:
    """(the build's directory under CACHE, created; the instruction set's compiler flags)."""
    tag, flags = isa()
    version = re.sub(r"[^A-Za-z0-9_.-]", "_", version)
    directory = CACHE / f"{name}-{framework}{version}-{tag}-{source_tag(*sources)}"
    directory.mkdir(parents=True, exist_ok=True)
    return directory, flags


class Build:
    """One binding's build, tried once per process: `available()` builds (or loads the cached
    build) on the first call and remembers the outcome; a failure warns once, with the reason,
    and every later call answers False at no cost."""

    def __init__(self, build: Callable[[], Any], switch: str, fallback: str,
                 warning: type[Warning]):
        self._build, self.switch, self.fallback, self.warning = build, switch, fallback, warning
        self.result: Any = None  # what the build returned (the Keras binding: its ops)
        self.reason: str | None = None  # why it failed
        self._tried = False

    def fresh(self) -> Build:
        """The same build, not yet tried (tests start from a process that never built)."""
        return Build(self._build, self.switch, self.fallback, self.warning)

    @property
    def loaded(self) -> bool:
        """Built (or loaded from the cache) in this process already; asking never builds."""
        return self._tried and self.reason is None

    def available(self) -> bool:
        if not self._tried:
            self._tried = True
            try:
                with warnings.catch_warnings():  # the one warning below is all a failure shows
                    warnings.simplefilter("ignore")
                    self.result = self._build()
            except Exception as exc:  # noqa: BLE001  (no compiler, no ninja, a compile error)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self.reason = f"{type(exc).__name__}: {first}"
                warnings.warn(f"{self.switch}: the compiled loop is unavailable ({self.reason}); "
                              f"running {self.fallback} instead", self.warning, stacklevel=3)
        return self.reason is None
