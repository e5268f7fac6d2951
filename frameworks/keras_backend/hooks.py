"""Per-step hooks by mask slot, Keras side: what each slot the step loop consumes does.

The registry (frameworks/variants.py) says which masks a variant draws; this table says how the
per-step loop applies a slot that is neither an input, a recurrent nor a weight mask. A hook is
made from the spec and the drawn masks of one forward call, so one with no mask can still act
(a deterministic expectation at evaluation). Masks arrive batch-first as drawn; hooks read them
time-major. A hook that declares its `core_slots` runs on the compiled core too (native_loop.py,
path `cpp`); one that does not runs on cells.py's loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from frameworks.keras_backend.cells import Slots, StepHook
from frameworks.spec import ModelSpec

Masks = dict[str, tf.Tensor]


class CandidateDropout(StepHook):
    """Semeniuta et al. 2016: the candidate update times a (Bm, 1, H) mask, or a fresh
    (Bm, T, H) one per step; the memory (c, or the z * h part of a GRU) is never dropped."""

    kind = "candidate"

    def __init__(self, mask: tf.Tensor):
        self.per_step = mask.shape[1] != 1
        self.mask = tf.transpose(mask, (1, 0, 2)) if self.per_step else mask[:, 0]

    def core_slots(self) -> Slots:
        return {"candidate": self.mask if self.per_step else self.mask[None]}

    def sequences(self) -> list[tf.Tensor]:
        return [self.mask] if self.per_step else []

    def candidate(self, xs: Sequence[tf.Tensor], g: tf.Tensor) -> tf.Tensor:
        return g * (xs[0] if self.per_step else self.mask)


def _candidate(spec: ModelSpec, k: int, masks: Masks) -> StepHook | None:
    mask = masks.get(f"candidate.{k}")
    return None if mask is None else CandidateDropout(mask)


class Zoneout(StepHook):
    """Krueger et al. 2017: per unit and step, the new h (and c) is the cell's update where the
    unit takes it and the previous value where it is zoned out; no 1/(1-p) scaling. The cell
    computes h from its un-zoned new c, as in the paper. `update` per state (h, c): a (B, T, H)
    0/1 mask (1 = take the update), the expectation 1 - p at evaluation, or None (not zoned)."""

    kind = "zoneout"

    def __init__(self, update: list[tf.Tensor | float | None]):
        self.update = [u if u is None or isinstance(u, float) else tf.transpose(u, (1, 0, 2))
                       for u in update]

    def core_slots(self) -> Slots:
        return {"zoneout_h": self.update[0], "zoneout_c": self.update[1]}

    def sequences(self) -> list[tf.Tensor]:
        return [u for u in self.update if u is not None and not isinstance(u, float)]

    def mix(self, xs: Sequence[tf.Tensor], new, old):  # noqa: ANN001, ANN201
        steps, out = iter(xs), []
        for u, n, o in zip(self.update, new, old, strict=True):
            if u is not None:
                u = u if isinstance(u, float) else next(steps)
                n = u * n + (1 - u) * o
            out.append(n)
        return out[0], out[1]


def _zoneout(spec: ModelSpec, k: int, masks: Masks) -> StepHook | None:
    update: list[tf.Tensor | float | None] = []
    for state in ("hidden", "cell"):
        p, mask = spec.rate(f"zoneout_{state}"), masks.get(f"zoneout_{state}.{k}")
        # a drawn mask is 0 or 1/(1-p); its sign is exactly 1 where the unit takes the update
        update.append(None if p == 0 else 1.0 - p if mask is None else tf.sign(mask))
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
