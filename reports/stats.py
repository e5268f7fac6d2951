"""Statistics of the report: Student-t confidence intervals over seeds, paired tests, Holm.

Seeds are the unit of replication: every number with a CI is a mean over independent runs, never
over epochs of one run (those are correlated). With few seeds the t interval is wide on purpose:
it is the honest answer to "is this larger than seed noise?".

The t distribution comes from `scipy.special` (stdtrit, stdtr: the functions `scipy.stats.t`
itself calls), which imports in a fifth of the time of `scipy.stats`; the tests check every
number against `scipy.stats.t.interval` and `scipy.stats.ttest_rel`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import special

CONFIDENCE = 0.95
ALPHA = 0.05


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


@dataclass(frozen=True)
class Paired:
    """Paired comparison of A and B over the same seeds; `diff` is mean(A - B)."""

    n: int
    mean_a: float
    mean_b: float
    diff: MeanCI
    effect: float  # Cohen's d_z: mean difference / sd of the differences
    p: float  # two-sided paired t-test; NaN when n < 2

    @property
    def testable(self) -> bool:
        return self.n >= 2 and math.isfinite(self.p)


def paired(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Paired t-test of a[i] vs b[i] (i = seed). Pairs with a missing value are dropped.

    Identical results in every seed (sd of differences 0, difference 0) give p = 1; a constant
    non-zero difference gives p = 0 (scipy returns NaN for both)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.shape} vs {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    d = x - y
    ci = mean_ci(d)
    n = len(d)
    if n < 2:
        return Paired(n, _mean(x), _mean(y), ci, math.nan, math.nan)
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        same = bool(np.all(d == 0))
        return Paired(n, _mean(x), _mean(y), ci, 0.0 if same else math.copysign(math.inf, d[0]),
                      1.0 if same else 0.0)
    t = float(d.mean()) / (sd / math.sqrt(n))
    p = float(2 * special.stdtr(n - 1, -abs(t)))
    return Paired(n, _mean(x), _mean(y), ci, float(d.mean()) / sd, p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1). NaN entries (tests
    that could not be run) stay NaN and do not count towards the family size."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


POWER = 0.80


def paired_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test (df = n - 1) to reject when the true mean difference
    is `effect` standard deviations of the differences: P(|T| > t_crit) with T noncentral t,
    noncentrality effect * sqrt(n). The far tail underflows to NaN for huge effects: it is 0."""
    if n < 2:
        return math.nan
    df, nc = n - 1, effect * math.sqrt(n)
    crit = float(special.stdtrit(df, 1 - alpha / 2))
    upper = 1.0 - float(special.nctdtr(df, nc, crit))
    lower = float(special.nctdtr(df, nc, -crit))
    return upper + (lower if math.isfinite(lower) else 0.0)


@lru_cache(maxsize=64)
def detectable_effect(n: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest standardised difference (d_z = mean / SD of the paired differences) that a
    two-sided paired t-test on `n` pairs rejects with probability `power`: the effect size a
    design of n seeds can see at all. Bisection on the exact noncentral-t power (monotone in the
    effect); NaN below two pairs."""
    if n < 2:
        return math.nan
    low, high = 0.0, 1.0
    while paired_power(high, n, alpha) < power:
        low, high = high, high * 2
    for _ in range(80):  # 2^-80 of the bracket: far below any displayed digit
        mid = (low + high) / 2
        if paired_power(mid, n, alpha) < power:
            low = mid
        else:
            high = mid
    return high


def minimum_detectable(sd: float, n: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """Minimum detectable difference in the metric's own units: detectable_effect x the observed
    SD of the paired differences. A comparison that finds nothing is only informative about
    differences larger than this; NaN when untestable."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return detectable_effect(n, power, alpha) * sd
