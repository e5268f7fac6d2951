"""How the PyTorch backend computes a per-step loop: its paths, fastest first, each with what it
covers (the choice itself is frameworks/compute.py's, one place for both backends).

- `cpp`: the compiled loop of fused_loop.py (LSTM and GRU, Gal masks, candidate dropout,
  zoneout; CPU, float32/float64), built on first use;
- `eager`: the autograd loop of cells.py, which computes every call (the path a machine
  without a compiler takes; no hand-written backward sits between the two, see
  docs/ARCHITECTURE.md);
- `compile`: the same autograd loop through torch.compile (`framework.torch_compile=true`, off
  by default: on a 2-core CPU compiling the unrolled loop took longer than it saved).

`framework.torch_loop=auto` (the default) takes the first that covers a call; the settings
arrive with the Runner and stay out of the config hash
(tests/frameworks/torch_backend/test_variants_vs_reference.py holds every path to the reference).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from frameworks.compute import Call, Path, PathRecord, loops, path
from frameworks.torch_backend.cells import StepHook
from frameworks.torch_backend.hooks import CORE_KINDS

PATHS: tuple[Path, ...] = (
    path("cpp", "cpp", cells=("lstm", "gru"), devices=("cpu",), dtypes=("float32", "float64"),
         hooks=CORE_KINDS),
    path("eager", "eager"),
    path("compile", "eager", compiled=True),
)
CPP = PATHS[0]
LOOPS = loops(PATHS)  # auto, cpp, eager
SETTING = "framework.torch_loop"


def call_for(cell: str, x: Tensor, gal_order: int | None, hooks: Sequence[StepHook]) -> Call:
    """The description of one per-step loop call that the choice of a path reads."""
    return Call(cell, x.device.type, str(x.dtype).removeprefix("torch."), gal_order,
                frozenset(h.kind for h in hooks))


def record() -> PathRecord:
    """A runner's record of what computed its per-step loops ("none": only fused layers)."""
    return PathRecord(tuple(p.name for p in PATHS))
