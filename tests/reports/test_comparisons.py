"""Unit tests of the comparisons on hand-made per-run frames: verdicts and their sentences,
Holm families, the declared primary questions, and the interval over seeds and test examples."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from reports.analysis import compare
from reports.analysis import declared as primary
from reports.analysis import pairs as P
from reports.analysis import verdicts as V
from reports.analysis.declared import Resolved


def _row(**kw):
    base = {"a": "A", "b": "B", "framework": "torch", "metric": "perplexity", "mode": "std",
            "n": 5, "mean_a": 80.0, "mean_b": 82.0, "diff": -2.0, "low": -3.0, "high": -1.0,
            "sd": 1.0, "effect": -2.0, "p": 0.001, "p_holm": 0.004}
    base.update(kw)
    return SimpleNamespace(**base)


def test_verdicts_and_sentences_respect_the_metric_direction():
    r = _row()
    assert V.verdict(r) == "A better"  # lower perplexity is better
    assert "A is better than B" in V.sentence(r)
    acc = _row(metric="accuracy", mean_a=0.80, mean_b=0.82, diff=-0.02, low=-0.03, high=-0.01)
    assert V.verdict(acc) == "A worse" and "-2.00 pp" in V.sentence(acc)
    ns = _row(p=0.02, p_holm=0.3)
    assert V.verdict(ns) == "no detectable difference"
    assert "suggestive" in V.sentence(ns) and "up to 3.00" in V.sentence(ns)
    one = _row(n=1, p=math.nan, p_holm=math.nan, low=math.nan, high=math.nan)
    assert V.verdict(one).startswith("not testable")
    same = _row(diff=0.0, sd=0.0, p=1.0, p_holm=1.0, low=0.0, high=0.0)
    assert "identical" in V.sentence(same)


def test_holm_family_per_question():
    per = pd.DataFrame({"arm": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "seed": [0, 1, 2] * 3,
                        "test_accuracy_std": [0.8, 0.82, 0.81, 0.7, 0.73, 0.71,
                                              0.75, 0.74, 0.78]})
    arms_ = [P.Arm(x, v, "rt", "torch", v, {}) for x, v in
             (("a", "naive"), ("b", "none"), ("c", "keras_impl2"))]
    task = compare.compare(per, arms_, "accuracy", "std", "task")
    question = compare.compare(per, arms_, "accuracy", "std", "question")
    assert len(task) == 3 and set(task["question"]) == {"none", "naive"}
    q = question[question["question"] == "naive"]
    assert q["p_holm"].iloc[0] == pytest.approx(q["p"].iloc[0])  # a family of one
    assert np.all(task["p_holm"] >= question["p_holm"] - 1e-15)


def test_primary_tag_parsing_and_one_family_per_restarted_sweep():
    assert primary.parse("a vs b\n\n  keras/none vs torch/none  # check\nbroken") == [
        ("a", "b"), ("keras/none", "torch/none"), ("broken", "")]
    parents = pd.DataFrame([
        {"run_id": "p1", "sweep_id": "s1", "start_time": 1,
         "tags": {"sweep_preset": "part3", "primary_comparisons": "a vs b\nc vs d"}},
        {"run_id": "p2", "sweep_id": "s2", "start_time": 2,
         "tags": {"sweep_preset": "part3", "primary_comparisons": "a vs b\nc vs d"}},
        {"run_id": "p3", "sweep_id": "s3", "start_time": 3, "tags": {"sweep_preset": "cpu"}},
    ])
    assert [(d.text, d.sweep_preset) for d in primary.declared(parents)] == [
        ("a vs b", "part3"), ("c vs d", "part3")]


def test_holm_only_within_the_primary_family():
    """Two declared comparisons (one untestable) and automatic ones: Holm adjusts the declared
    family of 2 only (the untestable one counts as not rejected); the rest keep their raw p."""
    rng = np.random.default_rng(1)
    seeds = list(range(5))
    values = {"a": 0.80, "b": 0.79, "c": 0.78}
    per = pd.DataFrame([{"arm": k, "seed": s, "test_accuracy_std": v + rng.normal(0, 0.004)
                         + 0.01 * s} for k, v in values.items() for s in seeds])
    arms_ = {k: P.Arm(k, k, "rt", "torch", v, {}) for k, v in
             (("a", "naive"), ("b", "none"), ("c", "keras_impl2"))}
    declared = [Resolved("A vs B", arms_["a"], arms_["b"]),
                Resolved("A vs X", arms_["a"], None, "no usable run of X")]
    c = compare.compare(per, list(arms_.values()), "accuracy", "std", primary=declared)
    first = c[c["family"] == "primary"]
    g = per.pivot(index="seed", columns="arm", values="test_accuracy_std")
    p_ab = sps.ttest_rel(g["a"], g["b"]).pvalue
    assert first["p"].iloc[0] == pytest.approx(p_ab)
    assert first["p_holm"].iloc[0] == pytest.approx(min(1.0, 2 * p_ab))  # family of 2
    assert math.isnan(first["p_holm"].iloc[1]) and "not testable" in first["verdict"].iloc[1]
    rest = c[c["family"] == "exploratory"]
    assert len(rest) == 2 and rest["p_holm"].isna().all()  # a-c, c-b: naive/none questions
    for r in rest.itertuples():
        assert r.p == pytest.approx(sps.ttest_rel(g[r.a], g[r.b]).pvalue)
        assert "uncorrected" in r.verdict
    without = compare.compare(per, list(arms_.values()), "accuracy", "std")
    assert set(without["family"]) == {"all"} and without["p_holm"].notna().all()


def test_primary_difference_over_seeds_and_test_examples_from_logged_predictions():
    """With both arms' test predictions for every paired seed, a primary comparison carries the
    interval over seeds and test examples, computed here from the per-example differences by
    the variance decomposition written out (not the report's helper): wider than the seeds-only
    interval when the examples disagree."""
    rng = np.random.default_rng(2)
    n_examples, seeds = 400, [0, 1, 2, 3, 4]
    labels = rng.integers(0, 2, n_examples)
    preds, rows = {}, []
    for arm, shift in (("a", 0.08), ("b", 0.0)):
        for s in seeds:
            p_true = np.clip(rng.uniform(0.2, 0.9, n_examples) + shift, 0.01, 0.99)
            preds.setdefault(arm, {})[s] = np.column_stack([labels, p_true, p_true])
            rows.append({"arm": arm, "seed": s, "test_accuracy_std": float(np.mean(p_true > 0.5)),
                         "run_hours": 0.1})
    per = pd.DataFrame(rows)
    arms = [P.Arm(x, x, "imdb", "torch", "none", {}) for x in ("a", "b")]
    declared = [Resolved("a vs b", arms[0], arms[1])]
    c = compare.compare(per, arms, "accuracy", "std", primary=declared, predictions=preds)
    r = c[c["family"] == "primary"].iloc[0]
    d = np.stack([(preds["a"][s][:, 1] > 0.5).astype(float) - (preds["b"][s][:, 1] > 0.5)
                  for s in seeds])
    v1 = d.mean(axis=1).var(ddof=1) / len(seeds)
    v2 = d.mean(axis=0).var(ddof=1) / n_examples
    df = (v1 + v2) ** 2 / (v1 ** 2 / (len(seeds) - 1) + v2 ** 2 / (n_examples - 1))
    half = sps.t.ppf(0.975, df) * np.sqrt(v1 + v2)
    assert (r.low_both, r.high_both) == (pytest.approx(d.mean() - half),
                                         pytest.approx(d.mean() + half))
    assert r.high_both - r.low_both > r.high - r.low
    assert "over seeds and test examples together" in r.sentence
    # an arm without predictions for a paired seed: no such interval, said in the table
    del preds["b"][3]
    c = compare.compare(per, arms, "accuracy", "std", primary=declared, predictions=preds)
    assert np.isnan(c[c["family"] == "primary"].iloc[0].low_both)


def test_cost_of_an_answer_says_why_equivalence_is_out_of_reach():
    """Equivalence out of reach within the seed cap is said as such; only a difference at or
    beyond the margin is said to be beyond it."""
    from reports.analysis.family import cost_of_answer

    def row(diff: float) -> SimpleNamespace:
        return SimpleNamespace(metric="accuracy", diff=diff, margin=0.005, alpha_family=0.005,
                               seeds_detect=71.0, cpu_hours_detect=6.0,
                               seeds_equiv=math.inf, cpu_hours_equiv=math.inf)

    inside = cost_of_answer(row(0.0045))
    assert "equivalence within the margin: not reachable (more than 1000 seeds)" in inside
    assert "≥ margin" not in inside
    assert "not reachable (|observed difference| ≥ margin 0.50 pp)" in cost_of_answer(row(-0.006))
