"""How the PyTorch backend computes, as opposed to what: set once per run from the config keys
framework.torch_loop and framework.torch_compile (logged as params), left out of the config hash
because they change the numbers by float rounding only (tests/test_torch_semantics.py).

- loop `bptt` (default): the LSTM Gal family runs the hand-written backward of gal_bptt.py;
  `eager`: every per-step loop is the autograd loop of cells.py; `cpp`: every per-step loop the
  compiled loop covers (LSTM and GRU, Gal masks, candidate dropout, zoneout; fused_loop.py) runs
  in C++, built on first use; anything else, or a machine where the build fails (one warning),
  runs what `bptt` runs.
- compile: run the autograd loops through torch.compile (off by default: on a 2-core CPU,
  compiling the unrolled loop took longer than it saved).
"""

from __future__ import annotations

from dataclasses import dataclass

LOOPS = ("bptt", "eager", "cpp")
PATHS = ("cpp", "bptt", "eager", "compile")  # what computed a per-step loop, in report order


@dataclass(frozen=True)
class Compute:
    loop: str = "bptt"
    compile: bool = False


_current = Compute()
_paths: set[str] = set()


def configure_compute(loop: str = "bptt", compile: bool = False) -> None:  # noqa: A002
    """Process-wide, like the thread count: one run per process."""
    global _current
    if loop not in LOOPS:
        raise ValueError(f"framework.torch_loop={loop!r} is not one of: {', '.join(LOOPS)}")
    _current = Compute(loop, bool(compile))
    _paths.clear()


def current() -> Compute:
    return _current


def note_path(path: str) -> None:
    """Called by the layer each time a per-step loop runs, with the path that computed it."""
    _paths.add(path)


def path_used() -> str:
    """The paths that computed this run's per-step loops since `configure_compute`, joined by
    '+' in PATHS order ("cpp"; "bptt" where the compiled loop was unavailable; "cpp+eager" when
    a call it does not cover ran the autograd loop); "none" when no per-step loop has run (a
    fused variant, or nothing trained yet). Why a record rather than the setting: `cpp` falls
    back per call and per machine, so only the run knows what computed it; log it after
    training, as a param outside the config hash."""
    return "+".join(p for p in PATHS if p in _paths) or "none"
