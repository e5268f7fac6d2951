"""The train / predict loop of a runner, written once for both backends.

Why one loop: the rules that make the two frameworks comparable (which batches carry the LM
hidden state, when it resets, how the epoch loss is averaged, at which batch a divergence is
reported, which mask stream a pass draws from) are not framework code, and two copies of them
drift. This module holds those rules in numpy only (no torch or tensorflow import: the Keras
runs of a sweep must not load PyTorch, nor the reverse). A backend's `Runner` subclasses
`RunnerLoop` and supplies only what needs its framework:

    _inputs(batch)            numpy batch -> the step's tensors (and any checks on the batch)
    _training(lr)             context for a training pass (modes, lr, device, library RNG); it
                              yields the train step: forward, loss, backward, clip, optimiser
                              step, returning (loss as a float, new state)
    _evaluating(stochastic)   context for a prediction pass; it yields the predict step:
                              forward without updates, returning (numpy probabilities, state)
    _detach(state)            the state to carry into the next training batch, cut from the
                              graph of this one (truncated BPTT)

A state of `None` handed to a step means "start from zeros"; the loop decides when that is.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

import numpy as np

from frameworks.base import DivergenceError
from frameworks.sampling import EVAL, TRAIN, MaskSamplerBase
from frameworks.spec import Batch, ModelSpec, TaskKind

InputsT = TypeVar("InputsT")
StateT = TypeVar("StateT")

TrainStep = Callable[[InputsT, StateT | None], tuple[float, StateT]]
"""One training batch: (inputs, state or None for zeros) -> (mean loss of the batch, state).
It must leave the weights untouched when the loss is non-finite: the loop then raises
`DivergenceError`, and a caller that keeps the model (early stopping, diagnosis) must find the
last finite weights, not ones already stepped with NaN gradients."""

PredictStep = Callable[[InputsT, StateT | None], tuple[np.ndarray, StateT]]
"""One prediction batch: (inputs, state or None for zeros) -> (probabilities, state). LM: the
probability of each target token, flattened (B*T,); classifier: (B, C)."""


def batch_size(batch: Batch) -> int:
    """B of a batch-first batch; the loop's only look at the data besides counting targets."""
    return int(np.shape(batch.x)[0])


class Carry(Generic[StateT]):
    """The hidden state handed from one batch of a pass to the next.

    Only a language model carries it (its batches are consecutive slices of one stream, so
    the state at the end of one batch is the right start of the next); a classifier's batches
    are unrelated sequences and each starts from zeros. The carried state also resets when the
    batch size changes (a short last batch, a different split): a state for B rows cannot start
    B' rows. A new `Carry` per call is what resets the state at the start of every pass.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._state: StateT | None = None
        self._size: int | None = None

    def take(self, size: int) -> StateT | None:
        """The state to start a batch of `size` rows from; None means zeros."""
        state = self._state if self.enabled and size == self._size else None
        self._state, self._size = None, size
        return state

    def keep(self, state: StateT) -> None:
        """Remember the state a batch ended with, for the next batch of the pass."""
        self._state = state


class RunnerLoop(ABC, Generic[InputsT, StateT]):
    """`train_epoch` and `predict` of the `Runner` protocol (frameworks/base.py), over the
    framework-specific hooks a backend's runner implements (see the module docstring)."""

    spec: ModelSpec
    sampler: MaskSamplerBase

    # -- hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def _inputs(self, batch: Batch) -> InputsT:
        """Convert (and check) one numpy batch for the framework."""

    @abstractmethod
    def _training(self, lr: float) -> AbstractContextManager[TrainStep[InputsT, StateT]]:
        """Set up a training pass at learning rate `lr`; yields the train step."""

    @abstractmethod
    def _evaluating(self, stochastic: bool) -> AbstractContextManager[PredictStep[InputsT, StateT]]:
        """Set up a prediction pass (deterministic, or one MC-dropout sample when
        `stochastic`) and undo it on exit, even on error; yields the predict step."""

    @abstractmethod
    def _detach(self, state: StateT) -> StateT:
        """The state without the autograd history of the batch that produced it."""

    # -- the loop ------------------------------------------------------------------------------
    def _carry(self) -> Carry[StateT]:
        return Carry(self.spec.task_kind is TaskKind.LANGUAGE_MODEL)

    def train_epoch(self, batches: Iterable[Batch], lr: float) -> float:
        """One pass with updates; the mean loss per token (LM) or per example (classifier).

        Batch losses are weighted by their number of targets, so a short last batch counts for
        what it holds. A non-finite batch loss raises `DivergenceError` naming that batch, with
        the weights left at their last finite values. No batches is a ValueError.
        """
        self.sampler.use(TRAIN)
        carry = self._carry()
        total, count = 0.0, 0
        with self._training(lr) as step:
            for i, batch in enumerate(batches):
                inputs = self._inputs(batch)
                loss, state = step(inputs, carry.take(batch_size(batch)))
                if not math.isfinite(loss):
                    raise DivergenceError(f"non-finite training loss {loss} at batch {i} (lr={lr})")
                carry.keep(self._detach(state))
                n = int(np.size(batch.y))
                total += loss * n
                count += n
        if count == 0:
            raise ValueError("train_epoch got no batches")
        return total / count

    def predict(self, batches: Iterable[Batch], stochastic: bool) -> np.ndarray:
        """One pass without updates. LM: probability of each target token, B*T per batch in
        batch order; classifier: (N, C) class probabilities.

        Masks (MC dropout, `eval_active`) come from the sampler's `eval` stream, and the
        `train` stream is selected again afterwards whatever happens, so the training masks of
        a seed never depend on how many evaluation passes ran. No batches is a ValueError.
        """
        carry = self._carry()
        outputs: list[np.ndarray] = []
        self.sampler.use(EVAL)
        try:
            with self._evaluating(bool(stochastic)) as step:
                for batch in batches:
                    inputs = self._inputs(batch)
                    probs, state = step(inputs, carry.take(batch_size(batch)))
                    carry.keep(state)
                    outputs.append(probs)
        finally:
            self.sampler.use(TRAIN)
        if not outputs:
            raise ValueError("predict got no batches")
        return np.concatenate(outputs, axis=0)
