"""Metrics computed once, framework-neutral, from the numpy probabilities a backend returns,
so the two frameworks cannot disagree by definition. MC dropout averages probabilities first."""

from __future__ import annotations

import re

import numpy as np

from experiments.tasks import SPLITS
from frameworks.spec import TaskKind

EPS = 1e-12
# name -> whether higher is better; the first metric of a task kind selects the best epoch
METRICS = {
    TaskKind.LANGUAGE_MODEL: {"perplexity": False},
    TaskKind.CLASSIFIER: {"accuracy": True, "log_loss": False},
}
HIGHER_IS_BETTER = {name: higher for kind in METRICS.values() for name, higher in kind.items()}

# The MLflow metric keys: logged by experiments/run.py (through experiments/tracking.py), read by
# reports/ and experiments/ui.py, named here only. Per epoch (step = epoch):
TRAIN_LOSS, LR, EPOCH_SECONDS = "train_loss", "lr", "epoch_seconds"
TRAIN_TOKENS_PER_S, EVAL_SECONDS = "train_tokens_per_s", "eval_seconds"
# the process's CPU seconds (all its threads) for the training epoch and its evaluation: unlike
# wall time, insensitive to a second job sharing the machine
EPOCH_CPU_SECONDS, EVAL_CPU_SECONDS = "epoch_cpu_seconds", "eval_cpu_seconds"
PER_EPOCH = (TRAIN_LOSS, LR, EPOCH_SECONDS, TRAIN_TOKENS_PER_S, EVAL_SECONDS,
             EPOCH_CPU_SECONDS, EVAL_CPU_SECONDS)
# once at the end (step = best epoch): the selected epoch and the epochs trained (early stop)
BEST_EPOCH, EPOCHS_RUN = "best_epoch", "epochs_run"
# and `<split>_<metric>_<mode>` (`key`): valid per epoch, test once; std = deterministic
# evaluation, mc = MC dropout (probabilities averaged over stochastic passes)
STD, MC = "std", "mc"
MODES = (STD, MC)
_, VALID, TEST = SPLITS  # the evaluated splits name their keys
_KEY = re.compile(rf"^({VALID}|{TEST})_(.+)_({STD}|{MC})$")


def key(split: str, metric: str, mode: str) -> str:
    """The logged key of one metric of a split in one mode: `test_accuracy_std`."""
    return f"{split}_{metric}_{mode}"


def mode_key(metric: str, mode: str) -> str:
    """`accuracy_mc`: a metric in one mode, before the split is prefixed (`split_keys`)."""
    return f"{metric}_{mode}"


def split_keys(split: str, values: dict[str, float]) -> dict[str, float]:
    """{mode_key: value} of one split -> {logged key: value}."""
    return {f"{split}_{k}": v for k, v in values.items()}


def parse_key(name: str) -> tuple[str, str, str] | None:
    """(split, metric, mode) of a logged `<split>_<metric>_<mode>` key; None for other keys."""
    found = _KEY.match(name)
    return (found.group(1), found.group(2), found.group(3)) if found else None


def perplexity(target_probs: np.ndarray) -> float:
    """exp(mean negative log-likelihood per token)."""
    p = np.clip(np.asarray(target_probs, np.float64), EPS, 1.0)
    return float(np.exp(-np.mean(np.log(p))))


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(np.asarray(probs, np.float64)[np.arange(len(labels)), labels], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def compute(kind: TaskKind, probs: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
    if kind is TaskKind.LANGUAGE_MODEL:
        return {"perplexity": perplexity(probs)}
    return {"accuracy": accuracy(probs, labels), "log_loss": log_loss(probs, labels)}


def selection_metric(kind: TaskKind) -> tuple[str, bool]:
    """(name, higher_is_better) of the validation metric that picks the best epoch."""
    name, higher = next(iter(METRICS[kind].items()))
    return name, higher
