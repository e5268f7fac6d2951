"""Paired comparisons of one task: the primary ones a sweep declared, and the pairs found
automatically (`reports.analysis.pairs`).

Runs are paired by seed (same seed = same initial weights and batches in both frameworks). Per
comparison: mean difference A - B with its 95% t interval, Cohen's d_z, a paired t-test, the
minimum difference the design detects with 80% power, and Holm's correction within the primary
family only; the automatic pairs are then exploratory and uncorrected, and only when a sweep
declared nothing are they Holm-corrected as one family (the behaviour before primary families).

A primary comparison ends in one of four verdicts (`reports.analysis.verdicts`): A better,
B better (Holm over the family), equivalent within the sweep's declared margin, or undecided;
`reports.analysis.family` adds the equivalence test, the interval over seeds and test examples,
and the price of an undecided answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.metrics import TEST
from experiments.metrics import key as metric_key
from reports.analysis import declared as D
from reports.analysis import family as F
from reports.analysis.pairs import Arm, arm_list, differing, pairs
from reports.analysis.tables import RUN_HOURS
from reports.analysis.verdicts import sentence, verdict
from reports.stats import holm, minimum_detectable, paired
from reports.store.load import StoreData
from reports.store.predictions import test_predictions


def compare(per: pd.DataFrame, arms: list[Arm], metric: str, mode: str,
            family: str = "task", primary: list | None = None,
            predictions: dict | None = None) -> pd.DataFrame:
    """Every comparison of one task on `test_<metric>_<mode>`.

    With declared primary comparisons (`reports.analysis.declared.Resolved`), those are the primary
    family, Holm-adjusted over the declared family (one that cannot be tested counts as not
    rejected), and every other automatic pair is exploratory with its unadjusted p. Without,
    the automatic pairs are Holm-adjusted as before: as one family (`family="task"`) or per
    question (`family="question"`). Every row carries the minimum detectable difference."""
    column = metric_key(TEST, metric, mode)
    values = {arm: dict(zip(g["seed"], g[column], strict=True))
              for arm, g in per.groupby("arm")}
    hours = {arm: float(g[RUN_HOURS].mean()) if RUN_HOURS in g else np.nan
             for arm, g in per.groupby("arm")}
    rows = [_row("primary", "declared", p.a, p.b, values, metric, mode, p.text, p.problem,
                 p.differs) for p in primary or []]
    for row, p in zip(rows, primary or [], strict=True):
        row["margin"] = F.margin_for(getattr(p, "margins", {}), metric, row["mean_b"])
        row["declared_seeds"] = getattr(p, "declared_seeds", 0)
    taken = {frozenset((p.a.arm, p.b.arm)) for p in primary or [] if p.a and p.b}
    rest = "exploratory" if primary else "all"
    rows += [_row(rest, question, a, b, values, metric, mode, "", "", differing(a, b))
             for question, a, b in pairs(arms) if frozenset((a.arm, b.arm)) not in taken]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["p_holm"] = np.nan
    first = frame[frame["family"] == "primary"].index
    if len(first):  # untestable members count as p = 1: the declared family keeps its size
        padded = frame.loc[first, "p"].fillna(1.0).tolist()
        frame.loc[first, "p_holm"] = holm(padded)
        frame.loc[frame.index.isin(first) & frame["p"].isna(), "p_holm"] = np.nan
        F.equivalence_and_cost(frame, first, values, hours)
        F.with_test_sampling(frame, first, predictions or {}, metric, mode)
    every = frame[frame["family"] == "all"]
    groups = [every.index] if family == "task" else \
        [g.index for _, g in every.groupby("question", sort=False)]
    for idx in groups:
        if len(idx):
            frame.loc[idx, "p_holm"] = holm(frame.loc[idx, "p"].tolist())
    frame["verdict"] = [verdict(r) for r in frame.itertuples()]
    frame["sentence"] = [sentence(r) for r in frame.itertuples()]
    return frame


COLUMNS = ["family", "question", "declared", "problem", "differs", "a", "b", "a_arm", "b_arm",
           "framework", "metric", "mode", "n", "seeds", "mean_a", "mean_b", "diff", "low",
           "high", "sd", "effect", "p", "mde", "margin", "declared_seeds", "alpha_family",
           "mde_family", "p_equiv", "p_equiv_holm", "seeds_detect", "seeds_equiv",
           "cpu_hours_detect", "cpu_hours_equiv", "family_low", "family_high", "low_both",
           "high_both"]


def _row(family: str, question: str, a: Arm | None, b: Arm | None, values: dict, metric: str,
         mode: str, declared: str, problem: str, differs: list[str]) -> dict:
    """One comparison's numbers: the paired test over the seeds both arms share."""
    va = values.get(a.arm, {}) if a else {}
    vb = values.get(b.arm, {}) if b else {}
    seeds = sorted(set(va) & set(vb))
    res = paired([va[s] for s in seeds], [vb[s] for s in seeds])
    names = declared.split(" vs ", 1) + [""] if declared else ["", ""]
    fa = a.framework if a else (b.framework if b else "?")
    fb = b.framework if b else fa
    return {
        "family": family, "question": question, "declared": declared, "problem": problem,
        "differs": "; ".join(differs), "a": a.label if a else names[0],
        "b": b.label if b else names[1], "a_arm": a.arm if a else "", "b_arm": b.arm if b else "",
        "framework": fa if fa == fb else f"{fa} vs {fb}",
        "metric": metric, "mode": mode, "n": res.n, "seeds": ",".join(map(str, seeds)),
        "mean_a": res.mean_a, "mean_b": res.mean_b, "diff": res.diff.mean,
        "low": res.diff.low, "high": res.diff.high, "sd": res.diff.sd,
        "effect": res.effect, "p": res.p, "mde": minimum_detectable(res.diff.sd, res.n),
    }


def for_task(data: StoreData, runs: pd.DataFrame, per: pd.DataFrame, task: str, metric: str,
             order: list[str], mode: str, family: str) -> pd.DataFrame:
    """Every comparison of `task`: the primary family its sweeps declared, then the rest."""
    mine = runs[runs["task"] == task]
    arms = arm_list(mine, order)
    declared = D.for_task(D.declared(data.parents), task, data.runs, runs, data.parents, arms)
    return compare(per[per["task"] == task], arms, metric, mode, family, declared,
                   _predictions(data.uri, per[per["task"] == task], declared))


def _predictions(uri: str, per: pd.DataFrame, declared: list) -> dict:
    """{arm: {seed: test predictions}} of the arms the primary questions compare."""
    wanted = {side.arm for d in declared for side in (d.a, d.b) if side is not None}
    mine = per[per["arm"].isin(wanted)]
    if mine.empty:
        return {}
    found = test_predictions(uri, list(mine["run_id"]))
    out: dict = {}
    for r in mine.itertuples():
        if r.run_id in found:
            out.setdefault(r.arm, {})[int(r.seed)] = found[r.run_id]
    return out
