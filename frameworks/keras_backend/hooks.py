"""Per-step hooks by mask slot, Keras side: what each slot the step loop consumes does.

The registry (frameworks/variants.py) says which masks a variant draws; this table says how the
per-step loop applies a slot that is neither an input, a recurrent nor a weight mask. A hook is
made from the spec and the drawn masks of one forward call, so one with no mask can still act
(a deterministic expectation at evaluation). Masks arrive batch-first as drawn; hooks read them
time-major.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from frameworks.keras_backend.cells import StepHook
from frameworks.spec import ModelSpec

Masks = dict[str, tf.Tensor]


class CandidateDropout(StepHook):
    """Semeniuta et al. 2016: the candidate update times a (Bm, 1, H) mask, or a fresh
    (Bm, T, H) one per step; the memory (c, or the z * h part of a GRU) is never dropped."""

    def __init__(self, mask: tf.Tensor):
        self.per_step = mask.shape[1] != 1
        self.mask = tf.transpose(mask, (1, 0, 2)) if self.per_step else mask[:, 0]

    def sequences(self) -> list[tf.Tensor]:
        return [self.mask] if self.per_step else []

    def candidate(self, xs: Sequence[tf.Tensor], g: tf.Tensor) -> tf.Tensor:
        return g * (xs[0] if self.per_step else self.mask)


def _candidate(spec: ModelSpec, k: int, masks: Masks) -> StepHook | None:
    mask = masks.get(f"candidate.{k}")
    return None if mask is None else CandidateDropout(mask)


HOOKS: dict[str, Callable[[ModelSpec, int, Masks], StepHook | None]] = {
    "candidate": _candidate,
}


def for_layer(spec: ModelSpec, k: int, masks: Masks) -> list[StepHook]:
    """The hooks layer k's step loop runs in this forward call (empty: no per-step hook)."""
    hooks = (make(spec, k, masks) for make in HOOKS.values())
    return [hook for hook in hooks if hook is not None]
