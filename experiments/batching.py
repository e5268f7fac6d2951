"""Batch iterators: identical batches, in identical order, for both frameworks."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from experiments.tasks import DataError, TaskData
from frameworks.spec import Batch, TaskKind


def lm_batches(stream: np.ndarray, batch_size: int, bptt: int) -> Iterator[Batch]:
    """Cut a token stream into `batch_size` parallel streams and walk them `bptt` steps at a
    time, so the hidden state can be carried from one batch to the next (truncated BPTT).
    The ragged end is dropped, as in the TensorFlow ptb_word_lm reference."""
    columns = (len(stream) - 1) // batch_size
    if columns < 1 or bptt < 1:
        raise DataError(
            f"{len(stream)} tokens give no batch of batch_size={batch_size}, bptt={bptt}"
        )
    data = np.asarray(stream[: batch_size * columns + 1], dtype=np.int64)
    x_all = data[:-1].reshape(batch_size, columns)
    y_all = data[1:].reshape(batch_size, columns)
    for start in range(0, columns - bptt + 1, bptt):
        yield Batch(x_all[:, start : start + bptt], y_all[:, start : start + bptt])


def classifier_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None = None
) -> Iterator[Batch]:
    """Minibatches of padded sequences; shuffled by `shuffle_seed` (e.g. (seed, epoch)) in
    training, in stored order in evaluation. The last batch may be smaller."""
    order = (
        np.arange(len(y)) if shuffle_seed is None
        else np.random.default_rng(shuffle_seed).permutation(len(y))
    )
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield Batch(x[idx].astype(np.int64), y[idx].astype(np.int64))


def num_batches(data: TaskData, split: str, batch_size: int, bptt: int) -> int:
    if data.kind is TaskKind.LANGUAGE_MODEL:
        columns = (len(data.splits[split][0]) - 1) // batch_size
        return max(0, columns // bptt)
    return -(-len(data.splits[split][1]) // batch_size)


def batches(
    data: TaskData, split: str, batch_size: int, bptt: int, shuffle_seed: int | None = None
) -> Iterator[Batch]:
    """The batches of one split; LM batches are never shuffled (state is carried)."""
    arrays = data.splits[split]
    if data.kind is TaskKind.LANGUAGE_MODEL:
        return lm_batches(arrays[0], batch_size, bptt)
    return classifier_batches(arrays[0], arrays[1], batch_size, shuffle_seed)
