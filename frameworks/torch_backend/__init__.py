"""PyTorch backend: `Runner` (the protocol in frameworks/base.py) and `configure_threads`.

Importing this package never imports TensorFlow or Keras.
"""

from __future__ import annotations

import contextlib

import torch

from frameworks.torch_backend.compute import LOOPS
from frameworks.torch_backend.runner import Runner
from frameworks.torch_backend.sampler import MaskSampler


def configure_threads(n: int) -> None:
    """Intra-op threads = n; inter-op threads too, if the pool has not started yet."""
    n = int(n)
    if n < 1:
        raise ValueError(f"threads={n} must be >= 1")
    torch.set_num_threads(n)
    # The inter-op pool can only be sized once, before any inter-op parallel work.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(n)


def device_available(device: str) -> bool:
    """Whether `train.device` (cpu, cuda, cuda:N) exists here; checked before a run is logged."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return True
    return torch.cuda.is_available() and int(index or 0) < torch.cuda.device_count()


__all__ = ["LOOPS", "MaskSampler", "Runner", "configure_threads", "device_available"]
