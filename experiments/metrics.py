"""Metrics computed once, framework-neutral, from the numpy probabilities a backend returns,
so the two frameworks cannot disagree by definition. MC dropout averages probabilities first."""

from __future__ import annotations

import numpy as np

from frameworks.spec import TaskKind

EPS = 1e-12
# name -> whether higher is better; the first metric of a task kind selects the best epoch
METRICS = {
    TaskKind.LANGUAGE_MODEL: {"perplexity": False},
    TaskKind.CLASSIFIER: {"accuracy": True, "log_loss": False},
}


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
