"""Intervals over seeds: the Student-t interval of a mean, and the prediction interval of one
new run.

Seeds are the unit of replication: every number with a CI is a mean over independent runs, never
over epochs of one run (those are correlated). With few seeds the t interval is wide on purpose:
it is the honest answer to "is this larger than seed noise?".

A published number is one run, not a mean: whether one run of ours could have produced it is a
question for the prediction interval of one new run, mean ± t(n-1) · s · sqrt(1 + 1/n), never for
the confidence interval of our mean (sqrt(n + 1) times narrower). The t quantiles come from
`scipy.special` (the functions scipy.stats.t itself calls, cheaper to import).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

CONFIDENCE = 0.95


@dataclass(frozen=True)
class MeanCI:
    """Mean of `n` values and its two-sided Student-t interval (NaN bounds when n < 2)."""

    n: int
    mean: float
    low: float
    high: float
    sd: float

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE) -> MeanCI:
    """t interval mean ± t_{n-1} * sd / sqrt(n); NaNs are dropped (a missing value is not 0)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return MeanCI(1, mean, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    half = float(special.stdtrit(n - 1, (1 + confidence) / 2)) * sd / math.sqrt(n)
    return MeanCI(n, mean, mean - half, mean + half, sd)


def predict_one(values: Sequence[float] | np.ndarray,
                confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high): the prediction interval of one new run, mean ± t(n-1) · s · sqrt(1 + 1/n)
    (NaN bounds below two values). A published single run outside it could not have come from
    our setting, by this much seed noise, with probability 1 - confidence."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan, math.nan
    return prediction_bounds(float(x.mean()), float(x.std(ddof=1)), len(x), confidence)


def prediction_bounds(mean: float, sd: float, n: int,
                      confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The prediction interval of one new value from the mean and SD of n earlier ones (of runs,
    or of paired differences: one run each of A and B against our n paired differences)."""
    if n < 2 or not (math.isfinite(mean) and math.isfinite(sd)):
        return math.nan, math.nan
    half = float(special.stdtrit(n - 1, (1 + confidence) / 2)) * sd * math.sqrt(1 + 1 / n)
    return mean - half, mean + half
