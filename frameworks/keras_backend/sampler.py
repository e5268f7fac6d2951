"""The one mask sampler of a Keras model: every dropout mask is drawn here, by name, eagerly.

Masks are drawn outside the compiled step and passed into it as tensors, so a test can inject
them (`source`), count them (`calls`) and check their shapes, and the compiled graph never owns
an RNG. Two seeded `tf.random.Generator`s: `train` for training batches and `eval` for
stochastic evaluation (MC dropout, and the `eval_active` row mask), so the masks of a training
run never depend on how many evaluation passes happened. (Keras 3's own `SeedGenerator`
advances on inference calls too; that is why the library is not asked for masks here.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

MaskSource = Callable[[str, tuple[int, ...], float], np.ndarray]

TRAIN, EVAL = "train", "eval"
_EVAL_SEED_OFFSET = 0x5EED_0E7A


def keep_scale(rate: float) -> np.float32:
    """1/(1-p) in float32, exactly as `NumpyMaskSource` scales its masks."""
    return np.float32(1.0) / np.float32(1.0 - rate)


class MaskSampler:
    """Draws inverted-scaled Bernoulli masks with values in {0, 1/(1-p)}."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.source: MaskSource | None = None
        self.calls: list[tuple[str, tuple[int, ...], float]] = []
        self.stream = TRAIN
        self._gens = {
            TRAIN: tf.random.Generator.from_seed(self.seed, alg="philox"),
            EVAL: tf.random.Generator.from_seed(self.seed + _EVAL_SEED_OFFSET, alg="philox"),
        }

    def use(self, stream: str) -> None:
        """Select the stream (`train` or `eval`) that the next draws come from."""
        if stream not in self._gens:
            raise ValueError(f"stream={stream!r} is not one of: {', '.join(self._gens)}")
        self.stream = stream

    def draw(self, name: str, shape: tuple[int, ...], rate: float) -> tf.Tensor:
        """One float32 mask of `shape`; 0 < rate < 1 (a zero rate must not reach the sampler)."""
        shape = tuple(int(s) for s in shape)
        rate = float(rate)
        if not 0.0 < rate < 1.0:
            raise ValueError(f"mask {name!r}: rate={rate} must be in (0, 1); rate 0 draws nothing")
        self.calls.append((name, shape, rate))
        if self.source is not None:
            mask = np.asarray(self.source(name, shape, rate), dtype=np.float32)
            if mask.shape != shape:
                raise ValueError(f"mask source gave {name!r} shape {mask.shape}, need {shape}")
            return tf.constant(mask)
        uniform = self._gens[self.stream].uniform(shape, dtype=tf.float32)
        return tf.cast(uniform >= rate, tf.float32) * keep_scale(rate)
