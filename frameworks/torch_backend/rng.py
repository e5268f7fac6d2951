"""A runner-private copy of torch's global RNG, for the one consumer we cannot route through the
sampler: nn.LSTM's own between-layer dropout (`torch_builtin`).

Training runs on the runner's saved global-RNG state (seeded from the runner's seed), so two
runners in one process, or any other code using the global RNG, never shift each other's masks;
evaluation runs on a forked RNG seeded from the sampler's eval stream, so MC passes never shift
the training masks either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class LibraryRng:
    def __init__(self, seed: int, device: torch.device):
        self.device = device
        self._devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=self._devices):
            torch.manual_seed(seed)
            self._state = self._get()

    def _get(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        cuda = torch.cuda.get_rng_state(self.device) if self._devices else None
        return torch.get_rng_state(), cuda

    def _set(self, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """Continue this runner's training stream; the caller's global state is restored."""
        with torch.random.fork_rng(devices=self._devices):
            self._set(self._state)
            try:
                yield
            finally:
                self._state = self._get()

    @contextlib.contextmanager
    def evaluation(self, seed: int) -> Iterator[None]:
        """A throw-away stream for one evaluation call."""
        with torch.random.fork_rng(devices=self._devices):
            torch.manual_seed(seed)
            yield
