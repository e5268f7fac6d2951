"""How the PyTorch backend computes, as opposed to what: set once per run from the config keys
framework.torch_loop and framework.torch_compile (logged as params), left out of the config hash
because they change the numbers by float rounding only (tests/test_torch_semantics.py).

- loop `bptt` (default): the LSTM Gal family runs the hand-written backward of gal_bptt.py;
  `eager`: every per-step loop is the autograd loop of cells.py.
- compile: run the autograd loops through torch.compile (off by default: on a 2-core CPU,
  compiling the unrolled loop took longer than it saved).
"""

from __future__ import annotations

from dataclasses import dataclass

LOOPS = ("bptt", "eager")


@dataclass(frozen=True)
class Compute:
    loop: str = "bptt"
    compile: bool = False


_current = Compute()


def configure_compute(loop: str = "bptt", compile: bool = False) -> None:  # noqa: A002
    """Process-wide, like the thread count: one run per process."""
    global _current
    if loop not in LOOPS:
        raise ValueError(f"framework.torch_loop={loop!r} is not one of: {', '.join(LOOPS)}")
    _current = Compute(loop, bool(compile))


def current() -> Compute:
    return _current
