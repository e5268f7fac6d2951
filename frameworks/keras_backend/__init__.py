"""Keras 3 (TensorFlow backend) implementation of the runner contract in `frameworks.base`.

The environment is fixed before keras is imported anywhere in this package: keras picks its
backend once, at import time, and TensorFlow's C++ logging is only quiet if the level is set
before TensorFlow loads. This package never imports torch.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from frameworks.keras_backend.threads import configure_threads  # noqa: E402

__all__ = ["Runner", "configure_threads"]


def __getattr__(name: str) -> object:
    """Import the runner (and with it keras) lazily, so `configure_threads` can run first."""
    if name == "Runner":
        from frameworks.keras_backend.runner import Runner

        return Runner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
