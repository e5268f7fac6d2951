"""The Keras runner: one model, its optimiser and its mask sampler behind the `Runner` protocol.

A custom loop (GradientTape inside `tf.function`) rather than `model.fit`: the LM's hidden state
is carried across the batches of one call (truncated BPTT) and reset at the start of each call,
the learning rate changes per epoch without retracing, and a non-finite loss stops the run at
the batch where it happens. Masks are drawn eagerly per batch by the sampler and passed into the
compiled step as tensors. One trace per distinct (batch, steps) shape and mask set. The loop
itself (batches, carry and reset of the state, divergence check, loss averaging, mask streams)
is frameworks/loop.py; this module supplies its compiled steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import keras
import numpy as np
import tensorflow as tf

from frameworks.base import check_weights, initial_weights
from frameworks.compute import DEFAULT, Compute, check
from frameworks.keras_backend.compute import PATHS, SETTING
from frameworks.keras_backend.model import Net, States
from frameworks.keras_backend.optim import Optimizer
from frameworks.keras_backend.sampler import MaskSampler
from frameworks.loop import PredictStep, RunnerLoop, TrainStep
from frameworks.masks import Phase, mask_plan
from frameworks.spec import Batch, ModelSpec, OptimSpec, TaskKind, check_framework_variant

_EVAL_SEED_OFFSET = 0x5EED_0E7A

Inputs = tuple[tf.Tensor, tf.Tensor, int, int]  # time-major ids (T, B), labels, B, T


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


class Runner(RunnerLoop[Inputs, States]):
    """Implements `frameworks.base.Runner` with Keras 3 on TensorFlow: `train_epoch` and
    `predict` are the shared loop; this class supplies its compiled steps."""

    def __init__(self, spec: ModelSpec, optim: OptimSpec, seed: int, device: str = "cpu",
                 compute: Compute = DEFAULT):
        check_framework_variant("keras", spec.variant)
        if keras.backend.backend() != "tensorflow":
            raise RuntimeError(
                f"keras was imported with backend {keras.backend.backend()!r} before this "
                "package; the Keras runner needs KERAS_BACKEND=tensorflow"
            )
        compute = check(PATHS, compute, SETTING)
        self.spec = spec
        self.optim = optim
        self.seed = int(seed)
        self.device = _tf_device(device)
        keras.utils.set_random_seed(self.seed)
        with tf.device(self.device):
            self.net = Net(spec, self.seed, compute)
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
    def compute_path(self) -> str:
        """What computed this runner's recurrent layers, recorded when they were traced:
        "cpp", "tf.function", or "cpp+tf.function" when the compiled op did not cover a layer."""
        return self.net.paths.joined()

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

    # -- hooks of the shared loop (frameworks/loop.py) -----------------------------------------
    def _masks(self, batch: int, steps: int, phase: Phase) -> dict[str, tf.Tensor]:
        return {r.name: self.sampler.draw(*r) for r in mask_plan(self.spec, batch, steps, phase)}

    def _inputs(self, batch: Batch) -> Inputs:
        """Time-major ids (T, B), labels, B, T."""
        x = np.asarray(batch.x)
        if x.ndim != 2:
            raise ValueError(f"batch.x must be (B, T) token ids, got shape {x.shape}")
        ids = tf.constant(np.ascontiguousarray(x.T), tf.int32)
        return ids, tf.constant(np.asarray(batch.y), tf.int32), x.shape[0], x.shape[1]

    @contextmanager
    def _training(self, lr: float) -> Iterator[TrainStep[Inputs, States]]:
        """The lr as one tensor for the epoch (a new Python float per epoch would retrace)."""
        lr_t = tf.constant(lr, tf.float32)
        with tf.device(self.device):
            yield partial(self._train_batch, lr=lr_t)

    def _train_batch(self, inputs: Inputs, states: States | None,
                     lr: tf.Tensor) -> tuple[float, States]:
        x, y, b, t = inputs
        states = self.net.zero_states(b) if states is None else states
        masks = self._masks(b, t, "train")
        loss, states = self._train_step(x, y, states, masks, lr)
        return float(loss), states

    def _detach(self, states: States) -> States:
        """Outputs of a compiled step hold no tape: nothing to cut."""
        return states

    @contextmanager
    def _evaluating(self, stochastic: bool) -> Iterator[PredictStep[Inputs, States]]:
        """Library RNG on its evaluation state for the pass (see `_swap_library_rng`)."""
        self._swap_library_rng()
        try:
            with tf.device(self.device):
                yield partial(self._predict_batch, stochastic=stochastic)
        finally:
            self._swap_library_rng()

    def _predict_batch(self, inputs: Inputs, states: States | None,
                       stochastic: bool) -> tuple[np.ndarray, States]:
        x, y, b, t = inputs
        states = self.net.zero_states(b) if states is None else states
        masks = self._masks(b, t, "mc" if stochastic else "eval")
        probs, states = self._predict_step(x, y, states, masks, stochastic)
        return probs.numpy(), states

    def _swap_library_rng(self) -> None:
        """Exchange the library SeedGenerators' training and evaluation states (keras3_builtin):
        Keras draws LSTM masks even on inference calls, which would otherwise shift the
        training masks of a seed by the number of evaluation batches."""
        for i, gen in enumerate(self.net.seed_generators()):
            current = np.array(gen.state.numpy())
            gen.state.assign(self._library_rng[i])
            self._library_rng[i] = current
