"""The report's statistics against scipy and hand computations on known arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from reports.stats import (
    detectable_effect,
    holm,
    mean_ci,
    minimum_detectable,
    paired,
    paired_power,
)

ARRAYS = [
    [84.6, 84.1, 85.0],
    [0.1503, 0.1510, 0.1498, 0.1521, 0.1490],
    [114.5, 120.7],
    list(np.random.default_rng(3).normal(10, 2, size=12)),
]


@pytest.mark.parametrize("values", ARRAYS)
def test_mean_ci_equals_scipy_t_interval(values):
    ci = mean_ci(values)
    n = len(values)
    low, high = sps.t.interval(0.95, n - 1, loc=np.mean(values), scale=sps.sem(values))
    assert ci.n == n
    assert ci.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert (ci.low, ci.high) == (pytest.approx(low, rel=1e-12), pytest.approx(high, rel=1e-12))
    assert ci.half == pytest.approx((high - low) / 2, rel=1e-12)


def test_mean_ci_known_numbers():
    # mean 2, sd 1, n 3: half = t_{0.975, 2} / sqrt(3) = 4.3026527297494 / sqrt(3) (t table)
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci.half == pytest.approx(4.3026527297494 / math.sqrt(3), rel=1e-10)


def test_mean_ci_one_and_no_values_and_nans():
    one = mean_ci([3.5])
    assert one.n == 1 and one.mean == 3.5 and math.isnan(one.half)
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)
    with_nan = mean_ci([1.0, float("nan"), 3.0])
    assert with_nan.n == 2 and with_nan.mean == 2.0


def test_paired_equals_scipy_ttest_rel():
    a = np.array([84.6, 84.1, 85.0, 84.9])
    b = np.array([83.3, 83.9, 84.2, 83.1])
    res = paired(a, b)
    ref = sps.ttest_rel(a, b)
    d = a - b
    assert res.n == 4 and res.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.diff.mean == pytest.approx(d.mean(), rel=1e-12)
    low, high = sps.t.interval(0.95, 3, loc=d.mean(), scale=sps.sem(d))
    assert (res.diff.low, res.diff.high) == (pytest.approx(low), pytest.approx(high))
    assert res.effect == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)
    assert (res.mean_a, res.mean_b) == (pytest.approx(a.mean()), pytest.approx(b.mean()))


def test_paired_is_not_the_unpaired_test():
    # a strong common seed effect: paired test finds the constant shift, Welch does not
    a = np.array([1.0, 5.0, 9.0, 13.0]) + 0.1 + np.array([0.0, 0.01, -0.01, 0.0])
    b = np.array([1.0, 5.0, 9.0, 13.0])
    assert paired(a, b).p < 0.001 < sps.ttest_ind(a, b).pvalue


def test_paired_edge_cases():
    same = paired([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert same.p == 1.0 and same.effect == 0.0 and same.testable
    shift = paired([1.5, 2.5], [1.0, 2.0])
    assert shift.p == 0.0 and math.isinf(shift.effect)
    single = paired([1.0], [2.0])
    assert single.n == 1 and math.isnan(single.p) and not single.testable
    dropped = paired([1.0, float("nan"), 3.0, 4.0], [0.5, 2.0, 2.0, 3.9])
    assert dropped.n == 3
    assert dropped.p == pytest.approx(sps.ttest_rel([1.0, 3.0, 4.0], [0.5, 2.0, 3.9]).pvalue)
    with pytest.raises(ValueError):
        paired([1.0, 2.0], [1.0])


def test_holm_against_hand_computation():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted 0.01, 0.03, 0.04, 0.20 -> 4*0.01, 3*0.03, 2*0.04 (raised to the running max),
    # 1*0.20
    expected = [0.04, 0.09, 0.09, 0.20]
    assert holm(p) == pytest.approx(expected)


def test_holm_caps_monotone_and_skips_nan():
    out = holm([0.5, float("nan"), 0.3, 0.001])
    # family of 3: 0.001*3, 0.3*2, 0.5*1 -> max(0.6, 0.5)
    assert out[3] == pytest.approx(0.003) and out[2] == pytest.approx(0.6)
    assert out[0] == pytest.approx(0.6) and math.isnan(out[1])
    assert holm([0.9, 0.8]) == [1.0, 1.0]
    assert holm([]) == []


def test_holm_agrees_with_bonferroni_for_the_smallest_and_is_never_smaller():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=9)
    adj = np.array(holm(p))
    assert adj[np.argmin(p)] == pytest.approx(min(1.0, p.min() * len(p)))
    assert np.all(adj >= p) and np.all(adj <= np.minimum(1.0, p * len(p)) + 1e-15)


def test_detectable_effect_matches_the_gpower_table_value():
    """G*Power 3 ('t tests - Means: difference from constant (one sample case)', the paired
    test on differences): d = 0.5, alpha = 0.05 two-tailed, power 0.80 needs n = 34, actual
    power 0.8077775. So 34 pairs detect d = 0.5 and 33 do not."""
    assert paired_power(0.5, 34) == pytest.approx(0.8077775, abs=5e-7)
    assert detectable_effect(34) < 0.5 < detectable_effect(33)


def test_minimum_detectable_difference_has_80_percent_power_in_simulation():
    """Draw paired differences with the MDE as true mean: the paired t-test rejects in 80% of
    20,000 simulated 5-seed studies (and in 5% when the true difference is 0)."""
    rng = np.random.default_rng(7)
    n, sd = 5, 0.004
    mde = minimum_detectable(sd, n)
    for mean, rate in ((mde, 0.80), (0.0, 0.05)):
        d = rng.normal(mean, sd, size=(20_000, n))
        t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
        rejected = (2 * sps.t.sf(np.abs(t), n - 1) < 0.05).mean()
        assert rejected == pytest.approx(rate, abs=0.012)  # > 4 standard errors


def test_detectable_effect_tends_to_the_normal_formula_and_edges():
    # large n: (z_{0.975} + z_{0.80}) / sqrt(n), the textbook approximation
    n = 4000
    assert detectable_effect(n) == pytest.approx(
        (sps.norm.ppf(0.975) + sps.norm.ppf(0.80)) / math.sqrt(n), rel=2e-3)
    assert detectable_effect(5) > detectable_effect(10) > detectable_effect(30)
    assert math.isnan(minimum_detectable(1.0, 1)) and math.isnan(detectable_effect(1))
    assert minimum_detectable(0.0, 5) == 0.0  # identical paired results: any shift is seen
    assert minimum_detectable(2.0, 5) == pytest.approx(2 * minimum_detectable(1.0, 5))


# --- prediction intervals, equivalence and the cost of an answer (statsmodels / scipy) -----------


def test_prediction_interval_is_the_t_formula_and_sqrt_n_plus_1_wider_than_the_ci():
    from reports.stats import predict_one

    x = [0.83, 0.84, 0.835, 0.842, 0.828]
    n, s = len(x), np.std(x, ddof=1)
    half = sps.t.ppf(0.975, n - 1) * s * math.sqrt(1 + 1 / n)
    assert predict_one(x) == (pytest.approx(np.mean(x) - half), pytest.approx(np.mean(x) + half))
    ci = mean_ci(x)
    low, high = predict_one(x)
    assert (high - low) / (ci.high - ci.low) == pytest.approx(math.sqrt(6))  # 2.45x at n = 5
    assert all(math.isnan(v) for v in predict_one([0.8]))


def test_prediction_interval_covers_one_new_run_95_percent_of_the_time_in_simulation():
    from reports.stats import predict_one

    rng = np.random.default_rng(7)
    trials, hits, ci_hits = 4000, 0, 0
    for _ in range(trials):
        x = rng.normal(0.84, 0.006, 6)
        low, high = predict_one(x[:5])
        hits += low <= x[5] <= high
        ci = mean_ci(x[:5])
        ci_hits += ci.low <= x[5] <= ci.high
    assert 0.935 < hits / trials < 0.965
    assert ci_hits / trials < 0.75  # the CI of the mean is the wrong yardstick for one run


def test_holm_equals_statsmodels_multipletests():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005, 0.2]
    assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_equivalence_p_equals_statsmodels_ttost_paired_and_decides_the_known_answers():
    from statsmodels.stats.weightstats import ttost_paired

    from reports.stats import equivalence_p

    rng = np.random.default_rng(3)
    zero = rng.normal(0.0, 0.004, 8)  # a true difference of 0, SD 0.4 pp
    assert equivalence_p(zero, 0.01) == pytest.approx(
        ttost_paired(zero, np.zeros(8), -0.01, 0.01)[0])
    assert equivalence_p(zero, 0.01) < 0.05  # equivalent within a wide margin (1 pp)
    assert equivalence_p(zero, 0.001) > 0.05  # undecided at a narrow one (0.1 pp)
    big = zero + 0.03
    assert equivalence_p(big, 0.01) > 0.5 and paired(big, np.zeros(8)).p < 1e-4  # a win
    assert math.isnan(equivalence_p([0.001], 0.01))


def test_seeds_to_detect_reach_the_power_statsmodels_gives_and_one_fewer_does_not():
    from statsmodels.stats.power import TTestPower

    from reports.stats import seeds_to_detect

    n = seeds_to_detect(0.005, 0.006, 0.05 / 8)
    assert TTestPower().power(0.005 / 0.006, int(n), 0.05 / 8) >= 0.80
    assert TTestPower().power(0.005 / 0.006, int(n) - 1, 0.05 / 8) < 0.80
    assert seeds_to_detect(0.0, 0.006, 0.05) == math.inf
    assert math.isnan(seeds_to_detect(0.01, math.nan, 0.05))


def test_seeds_for_equivalence_reach_80_percent_power_in_simulation():
    from reports.stats import equivalence_p, seeds_for_equivalence

    diff, sd, margin, alpha = 0.001, 0.006, 0.005, 0.05 / 8
    n = int(seeds_for_equivalence(diff, sd, margin, alpha))
    rng = np.random.default_rng(11)
    trials = 1500
    shown = sum(equivalence_p(rng.normal(diff, sd, n), margin) < alpha for _ in range(trials))
    assert 0.76 < shown / trials < 0.90
    assert seeds_for_equivalence(0.006, sd, margin, alpha) == math.inf  # beyond the margin


def test_seeds_for_equivalence_where_many_seeds_push_the_noncentral_t_far_into_its_tail():
    """The IMDB study's tied Gal masks vs no dropout (PyTorch): +0.04 pp, SD of the paired
    differences 0.46 pp, margin 0.5 pp, α/m = 0.005. Equivalence is reachable: the seed count
    is where the power from scipy.stats.nct (not scipy.special's nctdtr, which returns NaN at
    1000 seeds) first reaches 80%."""
    from scipy import stats as sps

    from reports.stats import seeds_for_equivalence

    diff, sd, margin, alpha = 0.0004, 0.004586, 0.005, 0.005

    def power(n: int) -> float:
        se, crit = sd / math.sqrt(n), sps.t.ppf(1 - alpha, n - 1)
        lower = sps.nct.sf(crit, n - 1, (diff + margin) / se)
        upper = sps.nct.cdf(-crit, n - 1, (diff - margin) / se)
        return max(0.0, lower + upper - 1.0)

    n = seeds_for_equivalence(diff, sd, margin, alpha)
    assert math.isfinite(n)
    assert power(int(n)) >= 0.80 > power(int(n) - 1)


def test_seeds_and_examples_covers_the_population_difference_where_seeds_alone_do_not():
    """Simulated paired runs on one fixed test set drawn from a population: per-example
    differences d = mu + a_seed + b_example + e. Over repeated test sets (and seeds), the
    decomposed interval covers mu about 95% of the time; the seeds-only t interval, blind to the
    shared test-set draw, covers it far less often."""
    from reports.stats import seeds_and_examples

    rng = np.random.default_rng(5)
    mu, trials, hits, seeds_only = 0.004, 600, 0, 0
    for _ in range(trials):
        a = rng.normal(0, 0.002, (5, 1))  # training noise per seed
        b = rng.normal(0, 0.25, (1, 2500))  # which examples the test set drew
        e = rng.normal(0, 0.1, (5, 2500))
        d = mu + a + b + e
        ci = seeds_and_examples(d)
        hits += ci.low <= mu <= ci.high
        plain = mean_ci(d.mean(axis=1))
        seeds_only += plain.low <= mu <= plain.high
        assert ci.mean == pytest.approx(d.mean())
    assert 0.92 < hits / trials < 0.98
    assert seeds_only / trials < 0.80
    # no example-level spread: it reduces to the seeds-only interval (df -> n - 1)
    flat = np.repeat(np.array([[0.01], [0.02], [0.015], [0.012], [0.018]]), 40, axis=1)
    both, plain = seeds_and_examples(flat), mean_ci(flat.mean(axis=1))
    assert (both.low, both.high) == (pytest.approx(plain.low), pytest.approx(plain.high))
