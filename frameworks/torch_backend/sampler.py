"""The one mask sampler of a PyTorch model: seeded torch.Generators (on the model's device)
behind the shared stream/injection/recording logic of `frameworks.sampling`."""

from __future__ import annotations

import numpy as np
import torch

from frameworks.sampling import EVAL, TRAIN, MaskSamplerBase, keep_scale
from frameworks.torch_backend.fused_loop import draw_mask

__all__ = ["EVAL", "TRAIN", "MaskSampler"]


class MaskSampler(MaskSamplerBase):
    def __init__(self, seed: int, device: str | torch.device = "cpu"):
        super().__init__(seed)
        self.device = torch.device(device)
        self._gens = {
            TRAIN: torch.Generator(device=self.device).manual_seed(self.seed),
            EVAL: torch.Generator(device=self.device).manual_seed(self.seed + 0x5EED_0E7A),
        }

    @property
    def generator(self) -> torch.Generator:
        """The generator of the current stream (`train` or `eval`)."""
        return self._gens[self.stream]

    def _random(self, shape, rate, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        scale = float(keep_scale(rate))
        mask = draw_mask(shape, rate, scale, self.generator) if dtype == torch.float32 else None
        if mask is not None:
            return mask  # the same values as below, in one compiled pass
        # uniform >= p keeps with probability 1 - p; 3x faster on CPU than bernoulli_
        mask = torch.rand(shape, dtype=dtype, device=self.device, generator=self.generator)
        return mask.ge_(rate).mul_(scale)

    def _from_numpy(self, mask: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(mask, dtype=dtype, device=self.device)

    def seed_for_library(self) -> int:
        """A seed drawn from the current stream, for library RNG (nn.LSTM's own dropout)."""
        seed = torch.randint(0, 2**62, (1,), generator=self.generator, device=self.device)
        return int(seed.item())
