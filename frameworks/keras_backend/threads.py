"""Thread configuration for TensorFlow; must run before the first TensorFlow op."""

from __future__ import annotations

import tensorflow as tf


def configure_threads(n: int) -> None:
    """Use `n` threads inside each op and one op at a time, so n cores are never oversubscribed.

    TensorFlow fixes its thread pools when its runtime starts (the first op or device query);
    after that the pools cannot change, so a later call with different numbers is an error
    rather than a silent no-op.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"threads={n} must be >= 1")
    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(n)
        threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:
        current = (
            threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads(),
        )
        if current == (n, 1):
            return
        raise RuntimeError(
            f"configure_threads({n}) came after TensorFlow started (its pools are {current}); "
            "call it before building a Runner or running any TensorFlow op"
        ) from err
