"""Tests of a difference: the paired t-test, Holm's correction within a family, and the paired
two one-sided tests (TOST) of equivalence within a margin.

Well-kept libraries do the work: scipy.stats' paired t-test, statsmodels' `multipletests` (Holm)
and `ttost_paired`; this module adds what they leave undefined (identical or constant paired
differences) and the family's per-test level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reports.stats.intervals import MeanCI, mean_ci

ALPHA = 0.05


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
    from scipy.stats import ttest_rel

    p = float(ttest_rel(x, y).pvalue)
    return Paired(n, _mean(x), _mean(y), ci, float(d.mean()) / sd, p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (statsmodels' `multipletests(method="holm")`). NaN
    entries (tests that could not be run) stay NaN and do not count towards the family size."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(len(p), math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if len(idx):
        out[idx] = multipletests(p[idx], alpha=ALPHA, method="holm")[1]
    return out.tolist()


def family_alpha(m: int, alpha: float = ALPHA) -> float:
    """The per-test level of the first (most demanding) step of Holm in a family of m tests,
    alpha / m: the level at which a design must detect a difference to be sure of a verdict
    whatever the other members' p-values are, and of the family-adjusted intervals."""
    return alpha / max(m, 1)


def equivalence_p(diffs: Sequence[float] | np.ndarray, margin: float) -> float:
    """p-value of the paired two one-sided tests (TOST) that the mean difference lies within
    ±margin (statsmodels' `ttost_paired`, the larger of the two one-sided p-values); small p:
    equivalent. NaN below two pairs or without a margin; a constant difference gives 0 inside
    the margin and 1 outside it (the t statistic is infinite)."""
    from statsmodels.stats.weightstats import ttost_paired

    d = np.asarray(diffs, dtype=np.float64)
    d = d[np.isfinite(d)]
    if len(d) < 2 or not (math.isfinite(margin) and margin > 0):
        return math.nan
    if float(d.std(ddof=1)) == 0.0:
        return 0.0 if abs(float(d.mean())) < margin else 1.0
    return float(ttost_paired(d, np.zeros_like(d), -margin, margin)[0])


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan
