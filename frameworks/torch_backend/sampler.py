"""The one mask sampler of a PyTorch model: every dropout mask is drawn here, by name.

Two seeded torch.Generators: one for training, one for evaluation (MC dropout and the
`eval_active` row mask), so the training masks of a seed never depend on how many evaluation
passes happened. Tests inject masks by setting `source` to a `NumpyMaskSource` (or any callable
(name, shape, rate) -> np.ndarray); every draw is recorded in `calls` as (name, shape, rate).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

MaskSource = Callable[[str, tuple[int, ...], float], np.ndarray]

TRAIN, EVAL = "train", "eval"


def keep_scale(rate: float) -> float:
    """1/(1-p) computed in float32, exactly as `NumpyMaskSource` does."""
    return float(np.float32(1.0) / np.float32(1.0 - rate))


class MaskSampler:
    """Draws inverted-scaled Bernoulli masks with values in {0, 1/(1-p)}."""

    def __init__(self, seed: int, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.seed = int(seed)
        self.source: MaskSource | None = None
        self.calls: list[tuple[str, tuple[int, ...], float]] = []
        self.stream = TRAIN
        self._gens = {
            TRAIN: torch.Generator(device=self.device).manual_seed(self.seed),
            EVAL: torch.Generator(device=self.device).manual_seed(self.seed + 0x5EED_0E7A),
        }

    @property
    def generator(self) -> torch.Generator:
        """The generator of the current stream (`train` or `eval`)."""
        return self._gens[self.stream]

    def use(self, stream: str) -> None:
        if stream not in self._gens:
            raise ValueError(f"stream={stream!r} is not one of: {', '.join(self._gens)}")
        self.stream = stream

    def draw(
        self,
        name: str,
        shape: tuple[int, ...],
        rate: float,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """One mask of `shape`; 0 < rate < 1 (a zero rate must not reach the sampler)."""
        shape = tuple(int(s) for s in shape)
        rate = float(rate)
        if not 0.0 < rate < 1.0:
            raise ValueError(f"mask {name!r}: rate={rate} must be in (0, 1); rate 0 draws nothing")
        self.calls.append((name, shape, rate))
        if self.source is not None:
            mask = np.asarray(self.source(name, shape, rate))
            if mask.shape != shape:
                raise ValueError(f"mask source gave {name!r} shape {mask.shape}, need {shape}")
            return torch.as_tensor(mask, dtype=dtype, device=self.device)
        # uniform >= p keeps with probability 1 - p; 3x faster on CPU than bernoulli_
        mask = torch.rand(shape, dtype=dtype, device=self.device, generator=self.generator)
        return mask.ge_(rate).mul_(keep_scale(rate))

    def seed_for_library(self) -> int:
        """A seed drawn from the current stream, for library RNG (nn.LSTM's own dropout)."""
        seed = torch.randint(0, 2**62, (1,), generator=self.generator, device=self.device)
        return int(seed.item())
