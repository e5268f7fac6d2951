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
from frameworks.torch_backend.cells import StepHook

Masks = dict[str, Tensor]


class CandidateDropout(StepHook):
    """Semeniuta et al. 2016: the candidate update times a (Bm, 1, H) or per-step (Bm, T, H)
    mask; the memory (c, or the z * h part of a GRU) is never dropped."""

    def __init__(self, mask: Tensor):
        self.mask = mask

    def candidate(self, t: int, g: Tensor) -> Tensor:
        return g * self.mask[:, t if self.mask.shape[1] > 1 else 0]


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
