"""Keras 3 (TensorFlow backend) implementation of the runner contract in `frameworks.base`.

The environment is fixed before keras is imported anywhere in this package: keras picks its
backend once, at import time, and TensorFlow's C++ logging is only quiet if the level is set
before TensorFlow loads. This package never imports torch.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from frameworks.keras_backend.compute import LOOPS  # noqa: E402
from frameworks.keras_backend.threads import configure_threads  # noqa: E402

__all__ = ["LOOPS", "Runner", "configure_threads", "device_available"]


def device_available(device: str) -> bool:
    """Whether `train.device` (cpu, cuda, cuda:N) exists here; checked before a run is logged
    (after `configure_threads`: it imports TensorFlow)."""
    kind, _, index = device.partition(":")
    if kind == "cpu":
        return True
    import tensorflow as tf

    return int(index or 0) < len(tf.config.list_physical_devices("GPU"))


def __getattr__(name: str) -> object:
    """Import the runner (and with it keras) lazily, so `configure_threads` can run first."""
    if name == "Runner":
        from frameworks.keras_backend.runner import Runner

        return Runner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
