"""How a backend computes a per-step loop, as opposed to what: the settings a Runner receives,
the ordered paths a backend offers with what each supports, and the one choice of a path.

A layer whose masks or hooks need a time loop describes its call (`Call`: cell, device, dtype,
the Gal family's order, its hooks' kinds); the backend's paths are listed fastest first, each
saying which calls it covers. `loop="auto"` (the default) takes the first path that covers the
call; an explicit loop (`framework.torch_loop=eager`) starts the search at the path it names and,
when that path cannot compute the call, says so once, by name, and takes the next that can. A
path that covers a call may still be unavailable at run time (a compiled loop that could not be
built, which warns once itself); the caller then tries the next candidate.

The settings stay out of the config hash: a rerun on another path differs by float rounding
only, as a rerun on another machine does. What did compute is recorded per runner
(`PathRecord`) and logged with the run as `compute_path`, since only the run knows.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

AUTO = "auto"


class ComputePathWarning(RuntimeWarning):
    """An explicitly asked-for compute path could not compute a call; another one did."""


@dataclass(frozen=True)
class Compute:
    """A run's compute settings: `loop` (auto or a path's loop name) and, PyTorch only,
    `compile` (the autograd loop through torch.compile)."""

    loop: str = AUTO
    compile: bool = False


DEFAULT = Compute()


@dataclass(frozen=True)
class Call:
    """What one per-step loop call asks of a path."""

    cell: str  # lstm | gru
    device: str  # cpu | cuda | gpu
    dtype: str  # float32 | float64 | ...
    gal_order: int | None = None  # the Gal family's Keras order (0/1/2); None: another variant
    hooks: frozenset[str] = frozenset()  # the per-step hooks' kinds (candidate, zoneout)

    def describe(self) -> str:
        parts = [self.cell.upper(), "Gal" if self.gal_order is not None else "",
                 "+".join(sorted(self.hooks)), "step loop", f"on {self.device}", self.dtype]
        return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Path:
    """One way of computing a per-step loop. `name` is what `compute_path` logs, `loop` the
    setting that asks for it; None in a field means any value."""

    name: str
    loop: str
    cells: frozenset[str] | None = None
    devices: frozenset[str] | None = None
    dtypes: frozenset[str] | None = None
    hooks: frozenset[str] | None = None  # the hook kinds it computes
    compiled: bool = False  # taken only when `Compute.compile` is this value

    def why_not(self, call: Call) -> tuple[str, str] | None:
        """Why this path cannot compute `call` -- (what differs, in words) -- or None."""
        checks = (("cell", call.cell, self.cells), ("device", call.device, self.devices),
                  ("dtype", call.dtype, self.dtypes))
        for what, value, allowed in checks:
            if allowed is not None and value not in allowed:
                return what, f"{what} {value}; it computes {', '.join(sorted(allowed))}"
        if self.hooks is not None and not call.hooks <= self.hooks:
            extra = ", ".join(sorted(call.hooks - self.hooks))
            return "hook", f"the {extra} hook" + ("" if self.hooks else " (it computes none)")
        return None


# Under `auto`, a call the fastest path skips for one of these is a gap in the code, not a
# property of the machine (a GPU, float16): it is said once, never a silent slowdown.
CODE_GAPS = ("cell", "hook")


def path(name: str, loop: str, *, cells: Iterable[str] | None = None,
         devices: Iterable[str] | None = None, dtypes: Iterable[str] | None = None,
         hooks: Iterable[str] | None = None,
         compiled: bool = False) -> Path:
    """A Path from plain iterables (None: any)."""
    def frozen(values: Iterable[str] | None) -> frozenset[str] | None:
        return None if values is None else frozenset(values)

    return Path(name, loop, frozen(cells), frozen(devices), frozen(dtypes), frozen(hooks),
                compiled)


def loops(paths: tuple[Path, ...]) -> tuple[str, ...]:
    """The values a backend's loop setting accepts: auto, then each path's loop once."""
    return (AUTO, *dict.fromkeys(p.loop for p in paths if not p.compiled))


def check(paths: tuple[Path, ...], compute: Compute, setting: str) -> Compute:
    """`compute` if its loop is one of the backend's (a Runner checks before anything runs)."""
    if compute.loop not in loops(paths):
        raise ValueError(f"{setting}={compute.loop!r} is not one of: {', '.join(loops(paths))}")
    if compute.compile and not any(p.compiled for p in paths):
        raise ValueError("compile=True: this backend has no torch.compile path")
    return compute


@functools.lru_cache(maxsize=256)
def candidates(paths: tuple[Path, ...], compute: Compute, call: Call,
               setting: str) -> tuple[Path, ...]:
    """The paths to try for `call`, in order (the first that runs computes it). Cached per
    call shape, so the warning for an asked-for path that cannot compute it comes once."""
    check(paths, compute, setting)
    eligible = [p for p in paths if p.compiled == compute.compile]
    if compute.loop != AUTO:
        names = [p.loop for p in eligible]
        if compute.loop not in names:  # torch.compile runs the autograd loop only
            raise ValueError(f"{setting}={compute.loop!r} does not run with compile=True")
        eligible = eligible[names.index(compute.loop):]
    chosen = tuple(p for p in eligible if p.why_not(call) is None)
    if not chosen:
        raise ValueError(f"no compute path computes a {call.describe()}")
    skipped = eligible[0].why_not(call)
    if skipped is not None and (compute.loop != AUTO or skipped[0] in CODE_GAPS):
        warnings.warn(f"{setting}={compute.loop}: `{eligible[0].name}` does not compute a "
                      f"{call.describe()} ({skipped[1]}); `{chosen[0].name}` runs it"
                      + (", slower" if compute.loop == AUTO else ""),
                      ComputePathWarning, stacklevel=2)
    return chosen


@dataclass
class PathRecord:
    """What computed one runner's per-step loops, in the backend's path order."""

    order: tuple[str, ...]
    empty: str = "none"  # what `joined` says before any per-step loop ran
    used: set[str] = field(default_factory=set)

    def note(self, name: str) -> None:
        self.used.add(name)

    def joined(self) -> str:
        """"cpp"; "eager" where the compiled loop was unavailable; "cpp+eager" when a call it
        does not cover ran another path."""
        return "+".join(p for p in self.order if p in self.used) or self.empty


def core_slots(cell: str, hooks: Iterable[Any]) -> dict[str, Any] | None:
    """The hooks' masks by the compiled core's slots (each hook's `core_slots()`, in either
    backend), or None where a hook declares none, two fill one slot, or a GRU would zone out a
    c it does not carry: the caller then runs the next path."""
    slots: dict[str, Any] = {}
    for hook in hooks:
        own = hook.core_slots()
        if own is None or slots.keys() & own.keys():
            return None
        slots.update(own)
    if cell != "lstm" and slots.get("zoneout_c") is not None:
        return None
    return slots
