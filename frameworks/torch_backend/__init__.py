"""PyTorch backend: `Runner` (the protocol in frameworks/base.py) and `configure_threads`.

Importing this package never imports TensorFlow or Keras.
"""

from __future__ import annotations

import contextlib

import torch

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


__all__ = ["MaskSampler", "Runner", "configure_threads"]
