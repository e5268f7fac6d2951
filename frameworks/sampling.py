"""What both backends' mask samplers share: streams, injection, recording and rate checks.

A subclass only says how to draw uniform masks with its own RNG and how to turn a numpy mask
into its tensor type. Two seeded streams, `train` and `eval` (MC dropout and the `eval_active`
row mask), so the training masks of a seed never depend on how many evaluation passes
happened. Tests inject masks by setting `source` to a `NumpyMaskSource` (or any callable
(name, shape, rate) -> np.ndarray); every draw is recorded in `calls` as (name, shape, rate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from frameworks.base import MaskSource

TRAIN, EVAL = "train", "eval"
STREAMS = (TRAIN, EVAL)


def keep_scale(rate: float) -> np.float32:
    """1/(1-p) in float32, exactly as `NumpyMaskSource` scales its masks."""
    return np.float32(1.0) / np.float32(1.0 - rate)


class MaskSamplerBase:
    """Draws inverted-scaled Bernoulli masks with values in {0, 1/(1-p)}, by name."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.source: MaskSource | None = None
        self.calls: list[tuple[str, tuple[int, ...], float]] = []
        self.stream = TRAIN

    def use(self, stream: str) -> None:
        """Select the stream (`train` or `eval`) that the next draws come from."""
        if stream not in STREAMS:
            raise ValueError(f"stream={stream!r} is not one of: {', '.join(STREAMS)}")
        self.stream = stream

    def draw(self, name: str, shape: tuple[int, ...], rate: float, **options: Any) -> Any:
        """One mask of `shape`; 0 < rate < 1 (a zero rate must not reach the sampler)."""
        shape = tuple(int(s) for s in shape)
        rate = float(rate)
        if not 0.0 < rate < 1.0:
            raise ValueError(f"mask {name!r}: rate={rate} must be in (0, 1); rate 0 draws nothing")
        self.calls.append((name, shape, rate))
        if self.source is None:
            return self._random(shape, rate, **options)
        mask = np.asarray(self.source(name, shape, rate), dtype=np.float32)
        if mask.shape != shape:
            raise ValueError(f"mask source gave {name!r} shape {mask.shape}, need {shape}")
        return self._from_numpy(mask, **options)

    def _random(self, shape: tuple[int, ...], rate: float, **options: Any) -> Any:
        raise NotImplementedError

    def _from_numpy(self, mask: np.ndarray, **options: Any) -> Any:
        raise NotImplementedError
