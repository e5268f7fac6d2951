"""The Keras runner: one model, its optimiser and its mask sampler behind the `Runner` protocol.

A custom loop (GradientTape inside `tf.function`) rather than `model.fit`: the LM's hidden state
is carried across the batches of one call (truncated BPTT) and reset at the start of each call,
the learning rate changes per epoch without retracing, and a non-finite loss stops the run at
the batch where it happens. Masks are drawn eagerly per batch by the sampler and passed into the
compiled step as tensors. One trace per distinct (batch, steps) shape and mask set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import keras
import numpy as np
import tensorflow as tf

from frameworks.base import DivergenceError, check_weights, initial_weights
from frameworks.keras_backend.model import Net, States
from frameworks.keras_backend.optim import Optimizer
from frameworks.keras_backend.sampler import EVAL, TRAIN, MaskSampler
from frameworks.masks import Phase, mask_plan
from frameworks.spec import Batch, ModelSpec, OptimSpec, TaskKind, check_framework_variant

_EVAL_SEED_OFFSET = 0x5EED_0E7A


def _tf_device(device: str) -> str:
    name = str(device).lower()
    if name == "cpu":
        return "/CPU:0"
    kind, _, index = name.partition(":")
    if kind in ("cuda", "gpu"):
        if not tf.config.list_physical_devices("GPU"):
            raise ValueError(f"device={device!r}: TensorFlow sees no GPU")
        return f"/GPU:{index or 0}"
    raise ValueError(f"device={device!r} is not one of: cpu, gpu[:N], cuda[:N]")


class Runner:
    """Implements `frameworks.base.Runner` with Keras 3 on TensorFlow."""

    def __init__(self, spec: ModelSpec, optim: OptimSpec, seed: int, device: str = "cpu"):
        check_framework_variant("keras", spec.variant)
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                f"keras was imported with backend {keras.backend.backend()!r} before this "
                "package; the Keras runner needs KERAS_BACKEND=tensorflow"
            )
        self.spec = spec
        self.optim = optim
        self.seed = int(seed)
        self.device = _tf_device(device)
        keras.utils.set_random_seed(self.seed)
        with tf.device(self.device):
            self.net = Net(spec, self.seed)
            self.sampler = MaskSampler(self.seed)
            self.variables = list(self.net.trainable_weights)
            self.optimizer = Optimizer(optim, self.variables)
        # keras3_builtin only: the state of the inactive stream of each library SeedGenerator
        self._library_rng = [
            np.array([self.seed + _EVAL_SEED_OFFSET + i, 0], np.int64)
            for i, _ in enumerate(self.net.seed_generators())
        ]
        self.load_weights(initial_weights(spec, self.seed))
        # partials, not methods: TensorFlow counts retraces per code object, so the runners of
        # one process (tests, sweeps) would warn about each other's traces. autograph off: the
        # loops are explicit tf.while_loops, and converting every called function costs more
        # tracing time than building the graph.
        self._train_step = tf.function(partial(Runner._train_step_fn, self), autograph=False)
        self._predict_step = tf.function(partial(Runner._predict_step_fn, self), autograph=False)

    # -- weights -------------------------------------------------------------------------------
    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_weights(self.spec, weights)
        self.net.set_numpy({k: np.asarray(v, np.float32) for k, v in weights.items()})

    def export_weights(self) -> dict[str, np.ndarray]:
        return self.net.get_numpy()

    # -- compiled steps ------------------------------------------------------------------------
    def _loss_terms(self, logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        labels = tf.reshape(y, (-1,))
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

    def _train_step_fn(self, x: tf.Tensor, y: tf.Tensor, states: States,
                       masks: dict[str, tf.Tensor], lr: tf.Tensor) -> tuple[tf.Tensor, States]:
        with tf.GradientTape() as tape:
            logits, new_states = self.net.forward(x, states, masks, training=True)
            loss = tf.reduce_mean(self._loss_terms(logits, y))
        grads = tape.gradient(loss, self.variables)

        def update() -> tf.Tensor:
            self.optimizer.apply(grads, lr)
            return tf.constant(True)

        # Leave the weights at their last finite values; the caller raises DivergenceError.
        tf.cond(tf.math.is_finite(loss), update, lambda: tf.constant(False))
        return loss, new_states

    def _predict_step_fn(self, x: tf.Tensor, y: tf.Tensor, states: States,
                         masks: dict[str, tf.Tensor], training: bool) -> tuple[tf.Tensor, States]:
        logits, new_states = self.net.forward(x, states, masks, training=training)
        if self.spec.task_kind is TaskKind.CLASSIFIER:
            return tf.nn.softmax(logits), new_states
        return tf.exp(-self._loss_terms(logits, y)), new_states

    # -- passes --------------------------------------------------------------------------------
    def _masks(self, batch: int, steps: int, phase: Phase) -> dict[str, tf.Tensor]:
        return {r.name: self.sampler.draw(*r) for r in mask_plan(self.spec, batch, steps, phase)}

    def _states(self, states: States | None, batch: int) -> States:
        """Carry the LM state across batches of one call; fresh zeros otherwise."""
        carried = (
            self.spec.task_kind is TaskKind.LANGUAGE_MODEL
            and states is not None
            and int(states[0][0].shape[0]) == batch
        )
        return states if carried else self.net.zero_states(batch)

    def _tensors(self, batch: Batch) -> tuple[tf.Tensor, tf.Tensor, int, int]:
        """Time-major ids (T, B), labels, B, T."""
        x = np.asarray(batch.x)
        if x.ndim != 2:
            raise ValueError(f"batch.x must be (B, T) token ids, got shape {x.shape}")
        ids = tf.constant(np.ascontiguousarray(x.T), tf.int32)
        return ids, tf.constant(np.asarray(batch.y), tf.int32), x.shape[0], x.shape[1]

    def train_epoch(self, batches: Iterable[Batch], lr: float) -> float:
        """One pass with updates; mean loss per token (LM) or per example (classifier)."""
        self.sampler.use(TRAIN)
        lr_t = tf.constant(lr, tf.float32)
        states, total, count = None, 0.0, 0
        with tf.device(self.device):
            for i, batch in enumerate(batches):
                x, y, b, t = self._tensors(batch)
                states = self._states(states, b)
                masks = self._masks(b, t, "train")
                loss_t, states = self._train_step(x, y, states, masks, lr_t)
                loss = float(loss_t)
                if not math.isfinite(loss):
                    raise DivergenceError(f"training loss is {loss} at batch {i} (lr={lr})")
                n = int(np.prod(y.shape))
                total += loss * n
                count += n
        if count == 0:
            raise ValueError("train_epoch got no batches")
        return total / count

    def predict(self, batches: Iterable[Batch], stochastic: bool) -> np.ndarray:
        """LM: probability of each target token (B*T per batch, in batch order); classifier:
        (N, C) probabilities. `stochastic` = one MC-dropout pass with the eval mask stream."""
        phase: Phase = "mc" if stochastic else "eval"
        outs: list[np.ndarray] = []
        states = None
        self.sampler.use(EVAL)
        self._swap_library_rng()
        try:
            with tf.device(self.device):
                for batch in batches:
                    x, y, b, t = self._tensors(batch)
                    states = self._states(states, b)
                    masks = self._masks(b, t, phase)
                    probs, states = self._predict_step(x, y, states, masks, bool(stochastic))
                    outs.append(probs.numpy())
        finally:
            self._swap_library_rng()
            self.sampler.use(TRAIN)
        if not outs:
            raise ValueError("predict got no batches")
        return np.concatenate(outs, axis=0)

    def _swap_library_rng(self) -> None:
        """Exchange the library SeedGenerators' training and evaluation states (keras3_builtin):
        Keras draws LSTM masks even on inference calls, which would otherwise shift the
        training masks of a seed by the number of evaluation batches."""
        for i, gen in enumerate(self.net.seed_generators()):
            current = np.array(gen.state.numpy())
            gen.state.assign(self._library_rng[i])
            self._library_rng[i] = current
