"""Per-step hooks by mask slot, PyTorch side: what each slot the step loop consumes does.

The registry (frameworks/variants.py) says which masks a variant draws; this table says how the
per-step loop applies a slot that is neither an input, a recurrent nor a weight mask. A hook is
made from the spec and the drawn masks of one forward call, so one with no mask can still act
(a deterministic expectation at evaluation).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from frameworks.spec import ModelSpec
from frameworks.torch_backend.cells import Slots, StepHook

Masks = dict[str, Tensor]


class CandidateDropout(StepHook):
    """Semeniuta et al. 2016: the candidate update times a (Bm, 1, H) or per-step (Bm, T, H)
    mask; the memory (c, or the z * h part of a GRU) is never dropped."""

    kind = "candidate"

    def __init__(self, mask: Tensor):
        self.mask = mask

    def core_slots(self) -> Slots:
        return {"candidate": self.mask}

    def candidate(self, t: int, g: Tensor) -> Tensor:
        return g * self.mask[:, t if self.mask.shape[1] > 1 else 0]


def _candidate(spec: ModelSpec, k: int, masks: Masks) -> StepHook | None:
    mask = masks.get(f"candidate.{k}")
    return None if mask is None else CandidateDropout(mask)


class Zoneout(StepHook):
    """Krueger et al. 2017: per unit and step, the new h (and c) is the cell's update where the
    unit takes it and the previous value where it is zoned out; no 1/(1-p) scaling. The cell
    computes h from its un-zoned new c, as in the paper. `update` per state (h, c): a (B, T, H)
    0/1 mask (1 = take the update), the expectation 1 - p at evaluation, or None (not zoned)."""

    kind = "zoneout"

    def __init__(self, update: list[Tensor | float | None]):
        self.update = update

    def core_slots(self) -> Slots:
        return {"zoneout_h": self.update[0], "zoneout_c": self.update[1]}

    def mix(self, t: int, new: tuple[Tensor, Tensor], old: tuple[Tensor, Tensor]):
        out = []
        for u, n, o in zip(self.update, new, old, strict=True):
            if u is not None:
                u = u if isinstance(u, float) else u[:, t]
                n = u * n + (1 - u) * o
            out.append(n)
        return out[0], out[1]


def _zoneout(spec: ModelSpec, k: int, masks: Masks) -> StepHook | None:
    update: list[Tensor | float | None] = []
    for state in ("hidden", "cell"):
        p, mask = spec.rate(f"zoneout_{state}"), masks.get(f"zoneout_{state}.{k}")
        # a drawn mask is 0 or 1/(1-p); its sign is exactly 1 where the unit takes the update
        update.append(None if p == 0 else 1.0 - p if mask is None else mask.sign())
    return None if all(u is None for u in update) else Zoneout(update)


HOOKS: dict[str, Callable[[ModelSpec, int, Masks], StepHook | None]] = {
    "candidate": _candidate,
    "zoneout": _zoneout,
}


# The hook kinds the compiled core computes: those whose class declares its slots.
CORE_KINDS = frozenset(h.kind for h in (CandidateDropout, Zoneout)
                       if h.core_slots is not StepHook.core_slots)


def for_layer(spec: ModelSpec, k: int, masks: Masks) -> list[StepHook]:
    """The hooks layer k's step loop runs in this forward call (empty: no per-step hook)."""
    hooks = (make(spec, k, masks) for make in HOOKS.values())
    return [hook for hook in hooks if hook is not None]
