"""Metrics on hand-computable cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.metrics import accuracy, compute, log_loss, perplexity, selection_metric
from frameworks.spec import TaskKind


def test_perplexity_is_exp_of_mean_nll():
    expected = math.exp((math.log(2) + math.log(4)) / 2)
    assert perplexity(np.array([0.5, 0.25])) == pytest.approx(expected)
    assert perplexity(np.full(7, 1 / 10_000)) == pytest.approx(10_000)


def test_accuracy_and_log_loss():
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    labels = np.array([0, 1, 1])
    assert accuracy(probs, labels) == pytest.approx(2 / 3)
    expected = -(math.log(0.9) + math.log(0.6) + math.log(0.3)) / 3
    assert log_loss(probs, labels) == pytest.approx(expected)


def test_mc_average_of_probabilities_differs_from_average_of_metrics():
    # two MC passes: averaging probabilities first (the definition) vs averaging perplexities
    a, b = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    assert perplexity((a + b) / 2) == pytest.approx(2.0)
    assert (perplexity(a) + perplexity(b)) / 2 == pytest.approx(1 / math.sqrt(0.09))


def test_compute_names_and_selection():
    names = set(compute(TaskKind.CLASSIFIER, np.eye(2), np.array([0, 1])))
    assert names == {"accuracy", "log_loss"}
    assert selection_metric(TaskKind.LANGUAGE_MODEL) == ("perplexity", False)
    assert selection_metric(TaskKind.CLASSIFIER) == ("accuracy", True)
