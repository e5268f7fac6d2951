"""Statistics of the report: Student-t intervals over seeds, paired tests, Holm, equivalence,
prediction intervals for one new run, and the seeds an undecided question would need.

Seeds are the unit of replication: every number with a CI is a mean over independent runs, never
over epochs of one run (those are correlated). With few seeds the t interval is wide on purpose:
it is the honest answer to "is this larger than seed noise?".

A published number is one run, not a mean: whether one run of ours could have produced it is a
question for the prediction interval of one new run, mean ± t(n-1) · s · sqrt(1 + 1/n), never for
the confidence interval of our mean (sqrt(n + 1) times narrower).

Well-kept libraries do the statistics where they have them: scipy.stats (t quantiles, the paired
t-test) and statsmodels (Holm via `multipletests`, the paired TOST `ttost_paired`, the power of
the paired t-test `TTestPower`); the t quantiles of intervals come from `scipy.special` (the
functions scipy.stats.t itself calls, cheaper to import). The tests compare every number with
those libraries on synthetic data whose answer is known.
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
POWER = 0.80


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


def seeds_and_examples(d: np.ndarray, confidence: float = CONFIDENCE) -> MeanCI:
    """Mean of per-example paired differences d[seed, example] (every seed on the same test
    examples) with an interval that covers both sources of variance: training (seeds) and the
    test set's sampling (examples). The variance decomposition d = mu + a_seed + b_example + e:
    the seeds-only interval sees a and e through the per-seed means, never b, which every seed
    shares; the examples' spread of their seed-averaged difference adds Var(b)/N (and e/(S N),
    counted twice: a conservative sliver). t with Welch-Satterthwaite degrees of freedom;
    `sd` is the SD of the per-seed means, as for the seeds-only interval."""
    d = np.asarray(d, dtype=np.float64)
    seeds, examples = d.shape
    per_seed, per_example = d.mean(axis=1), d.mean(axis=0)
    if seeds < 2 or examples < 2:
        return MeanCI(seeds, float(d.mean()) if d.size else math.nan, math.nan, math.nan,
                      math.nan)
    v_seed = float(per_seed.var(ddof=1)) / seeds
    v_example = float(per_example.var(ddof=1)) / examples
    total = v_seed + v_example
    df = total ** 2 / (v_seed ** 2 / (seeds - 1) + v_example ** 2 / (examples - 1)) \
        if total > 0 else math.inf
    half = float(special.stdtrit(df, (1 + confidence) / 2)) * math.sqrt(total) \
        if total > 0 else 0.0
    mean = float(d.mean())
    return MeanCI(seeds, mean, mean - half, mean + half, float(per_seed.std(ddof=1)))


MAX_SEEDS = 1000  # beyond this, "not reachable" is the honest answer


def seeds_to_detect(diff: float, sd: float, alpha: float, power: float = POWER) -> float:
    """Seeds (pairs) a two-sided paired t-test at `alpha` needs to detect a true difference
    `diff` with `power`, given the SD of the paired differences (`paired_power`);
    NaN when the spread is unknown, inf when the difference is 0 or the count exceeds MAX_SEEDS."""
    if not (math.isfinite(diff) and math.isfinite(sd)) or sd <= 0:
        return math.nan
    if diff == 0:
        return math.inf
    effect = abs(diff) / sd
    if paired_power(effect, MAX_SEEDS, alpha) < power:
        return math.inf
    n = 2
    while paired_power(effect, n, alpha) < power:
        n += 1
    return float(n)


def equivalence_power(diff: float, sd: float, n: int, margin: float, alpha: float) -> float:
    """Power of the paired TOST at `alpha` with n pairs when the true difference is `diff`:
    P(both one-sided tests reject), approximated as P1 + P2 - 1 from the two noncentral t
    distributions (exact when the two rejection regions cannot both fail; never below 0)."""
    if n < 2 or sd <= 0 or margin <= 0:
        return math.nan
    df, se = n - 1, sd / math.sqrt(n)
    crit = float(special.stdtrit(df, 1 - alpha))
    lower = 1.0 - float(special.nctdtr(df, (diff + margin) / se, crit))  # rejects diff <= -m
    upper = float(special.nctdtr(df, (diff - margin) / se, -crit))  # rejects diff >= +m
    return max(0.0, lower + upper - 1.0)


def seeds_for_equivalence(diff: float, sd: float, margin: float, alpha: float,
                          power: float = POWER) -> float:
    """Seeds the paired TOST at `alpha` needs to declare equivalence within ±margin with
    `power` if the true difference is the observed one; inf when |diff| >= margin (no seed
    count shows equivalence of a difference the margin excludes) or beyond MAX_SEEDS."""
    if not (math.isfinite(diff) and math.isfinite(sd) and math.isfinite(margin)) or sd <= 0 \
            or margin <= 0:
        return math.nan
    if abs(diff) >= margin or equivalence_power(diff, sd, MAX_SEEDS, margin, alpha) < power:
        return math.inf
    low, high = 2, MAX_SEEDS
    while low < high:  # power rises with n: the smallest n that reaches it
        mid = (low + high) // 2
        if equivalence_power(diff, sd, mid, margin, alpha) >= power:
            high = mid
        else:
            low = mid + 1
    return float(low)


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def paired_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test (df = n - 1) to reject when the true mean difference
    is `effect` standard deviations of the differences; NaN below two pairs. The upper tail is
    statsmodels' (`TTestPower`, one-sided at alpha / 2: the same critical value); the lower tail,
    which statsmodels returns as NaN once it underflows, is scipy's noncentral t, 0 there."""
    from statsmodels.stats.power import TTestPower

    if n < 2:
        return math.nan
    upper = float(TTestPower().power(effect, n, alpha / 2, alternative="larger"))
    crit = float(special.stdtrit(n - 1, 1 - alpha / 2))
    lower = float(special.nctdtr(n - 1, effect * math.sqrt(n), -crit))
    return upper + (lower if math.isfinite(lower) else 0.0)


@lru_cache(maxsize=64)
def detectable_effect(n: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest standardised difference (d_z = mean / SD of the paired differences) that a
    two-sided paired t-test on `n` pairs rejects with probability `power`: the effect size a
    design of n seeds can see at all; NaN below two pairs. The root of `paired_power` is found
    with scipy's brentq: statsmodels' `solve_power` stops short of the target at small n and
    alpha (power 0.799 at n = 3, alpha = 0.05 / 8)."""
    from scipy.optimize import brentq

    if n < 2:
        return math.nan
    return float(brentq(lambda e: paired_power(e, n, alpha) - power, 1e-9, 1e3, xtol=1e-12))


def minimum_detectable(sd: float, n: int, power: float = POWER, alpha: float = ALPHA) -> float:
    """Minimum detectable difference in the metric's own units: detectable_effect x the observed
    SD of the paired differences. A comparison that finds nothing is only informative about
    differences larger than this; NaN when untestable."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return detectable_effect(n, power, alpha) * sd
