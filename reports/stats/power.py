"""Power of a design: what a paired t-test on n seeds can detect, and the seeds a test (or an
equivalence test) needs to give an answer with 80% power.

The upper tail of the paired t-test's power is statsmodels' `TTestPower`; the rest (the lower
tail statsmodels drops, TOST's power, the seed searches) comes from scipy's noncentral t.
"""

from __future__ import annotations

import math
from functools import lru_cache

from scipy import special

from reports.stats.significance import ALPHA

POWER = 0.80

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
    lower = 1.0 - _nct_cdf(df, (diff + margin) / se, crit)  # rejects diff <= -m
    upper = _nct_cdf(df, (diff - margin) / se, -crit)  # rejects diff >= +m
    return max(0.0, lower + upper - 1.0)


def _nct_cdf(df: int, noncentrality: float, x: float) -> float:
    """P(T <= x) for a noncentral t. scipy's `nctdtr` returns NaN far in a tail (a
    noncentrality of ~37 at 999 df, a TOST with many seeds and a small spread), where the
    probability is 0 or 1 to double precision: the side of x the noncentrality lies on says
    which, and a NaN must not read as no power."""
    p = float(special.nctdtr(df, noncentrality, x))
    if math.isnan(p):
        return 0.0 if noncentrality > x else 1.0
    return p


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


def paired_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test (df = n - 1) to reject when the true mean difference
    is `effect` standard deviations of the differences; NaN below two pairs. The upper tail is
    statsmodels' (`TTestPower`, one-sided at alpha / 2: the same critical value); the lower tail,
    which statsmodels returns as NaN once it underflows, is scipy's noncentral t (`_nct_cdf`)."""
    from statsmodels.stats.power import TTestPower

    if n < 2:
        return math.nan
    upper = float(TTestPower().power(effect, n, alpha / 2, alternative="larger"))
    crit = float(special.stdtrit(n - 1, 1 - alpha / 2))
    return upper + _nct_cdf(n - 1, effect * math.sqrt(n), -crit)


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
