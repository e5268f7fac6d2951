"""The shared runner loop (frameworks/loop.py) on a fake numpy backend: which batches carry the
state, where it resets, how the epoch loss is weighted, where a divergence is reported, and
which mask stream each pass uses. No framework is imported, so these run in milliseconds and
pin the rules both real backends inherit."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest

from frameworks.base import DivergenceError
from frameworks.loop import Carry, PredictStep, RunnerLoop, TrainStep
from frameworks.sampling import EVAL, TRAIN, MaskSamplerBase
from frameworks.spec import Batch, TaskKind

LM, CLS = TaskKind.LANGUAGE_MODEL, TaskKind.CLASSIFIER


class FakeRunner(RunnerLoop[np.ndarray, np.ndarray]):
    """State = per-row count of batches seen since the last reset; the train step's loss is
    read from a script, one value per batch. Every hook call is recorded."""

    def __init__(self, task: TaskKind = LM, losses: list[float] | None = None):
        self.spec = SimpleNamespace(task_kind=task)  # the loop reads nothing else of the spec
        self.sampler = MaskSamplerBase(seed=0)
        self.losses = list(losses or [])
        self.starts: list[np.ndarray | None] = []  # a copy of the state each step was handed
        self.handed: list[np.ndarray | None] = []  # that state itself
        self.streams: list[str] = []  # the sampler stream during each step
        self.detached: list[np.ndarray] = []
        self.events: list[str] = []
        self.lr: float | None = None
        self.stochastic: bool | None = None

    def _inputs(self, batch: Batch) -> np.ndarray:
        return np.asarray(batch.x)

    def _step(self, x: np.ndarray, state: np.ndarray | None) -> np.ndarray:
        self.starts.append(None if state is None else state.copy())
        self.handed.append(state)
        self.streams.append(self.sampler.stream)
        return (np.zeros(x.shape[0]) if state is None else state) + 1

    @contextmanager
    def _training(self, lr: float) -> Iterator[TrainStep[np.ndarray, np.ndarray]]:
        self.lr = lr
        self.events.append("train:enter")
        try:
            yield self._train_step
        finally:
            self.events.append("train:exit")

    def _train_step(self, x: np.ndarray, state: np.ndarray | None) -> tuple[float, np.ndarray]:
        new = self._step(x, state)
        return self.losses.pop(0), new

    def _detach(self, state: np.ndarray) -> np.ndarray:
        out = state.copy()
        self.detached.append(out)
        return out

    @contextmanager
    def _evaluating(self, stochastic: bool) -> Iterator[PredictStep[np.ndarray, np.ndarray]]:
        self.stochastic = stochastic
        self.events.append("eval:enter")
        try:
            yield self._predict_step
        finally:
            self.events.append("eval:exit")

    def _predict_step(self, x: np.ndarray,
                      state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        new = self._step(x, state)
        return x[:, 0].astype(np.float64) * 10 + new, new  # one value per row, tagged by x


def lm(b: int, t: int = 3, tag: int = 0) -> Batch:
    x = np.full((b, t), tag)
    return Batch(x, x)


def counts(starts: list[np.ndarray | None]) -> list[int | None]:
    """The carried count each step started from (None: fresh zeros)."""
    return [None if s is None else int(s[0]) for s in starts]


def test_lm_state_is_carried_and_resets_when_the_batch_size_changes():
    r = FakeRunner(LM, losses=[1.0] * 5)
    r.train_epoch([lm(2), lm(2), lm(3), lm(3), lm(2)], lr=0.5)
    assert counts(r.starts) == [None, 1, None, 1, None]
    # what is carried is the detached state, not the step's own output
    assert len(r.detached) == 5
    assert r.handed[1] is r.detached[0] and r.handed[3] is r.detached[2]


def test_each_call_starts_from_zeros_in_both_passes():
    r = FakeRunner(LM, losses=[1.0] * 4)
    r.train_epoch([lm(2), lm(2)], lr=0.1)
    r.train_epoch([lm(2), lm(2)], lr=0.1)
    r.predict([lm(2), lm(2), lm(2)], stochastic=False)
    r.predict([lm(2)], stochastic=True)
    assert counts(r.starts) == [None, 1, None, 1, None, 1, 2, None]


def test_a_classifier_never_carries_state():
    r = FakeRunner(CLS, losses=[1.0] * 3)
    batches = [Batch(np.zeros((2, 3), int), np.zeros(2, int)) for _ in range(3)]
    r.train_epoch(batches, lr=0.1)
    r.predict(batches, stochastic=False)
    assert counts(r.starts) == [None] * 6


def test_epoch_loss_is_weighted_by_targets_not_a_mean_of_batch_means():
    r = FakeRunner(LM, losses=[1.0, 4.0])
    loss = r.train_epoch([lm(2, t=3), lm(1, t=3)], lr=0.1)  # 6 and 3 targets
    assert loss == pytest.approx((1.0 * 6 + 4.0 * 3) / 9)  # 2.0, not 2.5
    r = FakeRunner(CLS, losses=[3.0, 0.0])
    batches = [Batch(np.zeros((3, 4), int), np.zeros(3, int)),
               Batch(np.zeros((1, 4), int), np.zeros(1, int))]
    assert r.train_epoch(batches, lr=0.1) == pytest.approx(9.0 / 4)  # per example, not token


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_divergence_is_raised_at_the_batch_that_goes_non_finite(bad):
    r = FakeRunner(LM, losses=[1.0, 2.0, bad, 1.0])
    consumed: list[int] = []

    def batches() -> Iterator[Batch]:
        for i in range(4):
            consumed.append(i)
            yield lm(2)

    with pytest.raises(DivergenceError, match=r"batch 2 \(lr=0.25\)"):
        r.train_epoch(batches(), lr=0.25)
    assert consumed == [0, 1, 2]  # stops there: no further batch is even read
    assert len(r.detached) == 2  # the diverged state is never carried
    assert r.events == ["train:enter", "train:exit"]  # the backend's context is still closed
    assert r.lr == 0.25


def test_no_batches_is_a_value_error_in_both_passes():
    r = FakeRunner(LM)
    with pytest.raises(ValueError, match="train_epoch got no batches"):
        r.train_epoch([], lr=0.1)
    with pytest.raises(ValueError, match="predict got no batches"):
        r.predict(iter([]), stochastic=True)
    assert r.sampler.stream == TRAIN


def test_predict_stacks_batches_in_order_on_the_eval_stream_then_restores_train():
    r = FakeRunner(LM)
    r.sampler.use(EVAL)  # whatever was selected before, training draws from `train`
    r.losses = [1.0]
    r.train_epoch([lm(2)], lr=0.1)
    out = r.predict([lm(2, tag=1), lm(2, tag=2), lm(3, tag=3)], stochastic=np.bool_(True))
    np.testing.assert_array_equal(out, [11, 11, 22, 22, 31, 31, 31])
    assert r.streams == [TRAIN, EVAL, EVAL, EVAL]
    assert r.sampler.stream == TRAIN
    assert r.stochastic is True  # normalised to a bool for the backend


def test_predict_restores_the_train_stream_and_closes_its_context_on_error():
    r = FakeRunner(LM)

    def batches() -> Iterator[Batch]:
        yield lm(2)
        raise KeyError("data source broke")

    with pytest.raises(KeyError):
        r.predict(batches(), stochastic=False)
    assert r.sampler.stream == TRAIN
    assert r.events == ["eval:enter", "eval:exit"]


def test_carry_alone():
    c: Carry[str] = Carry(enabled=True)
    assert c.take(4) is None
    c.keep("s1")
    assert c.take(4) == "s1"
    c.keep("s2")
    assert c.take(5) is None  # size changed
    c.keep("s3")
    assert c.take(5) == "s3"
    assert c.take(5) is None  # nothing kept since: never hands out a stale state
    off: Carry[str] = Carry(enabled=False)
    off.take(4)
    off.keep("s")
    assert off.take(4) is None
