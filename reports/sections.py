"""The sections that answer questions: the comparisons per task (primary family, exploratory
rest), the forest plot's data, and Part 3 beside us with the verdict on it. Kept apart from
`reports.report`, which assembles every section in order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.metrics import MODES
from reports import arms as A
from reports import compare, fmt, load, part3, primary, text
from reports.load import StoreData
from reports.render import Bullets, Heading, Para, Table
from reports.stats import ALPHA


def arm_list(runs: pd.DataFrame, order: list[str]) -> list[compare.Arm]:
    """The arms of some runs (one task) in report order."""
    return sorted((compare.Arm(r.arm, r.label, r.task, r.framework, r.variant, r.setting,
                               r.preset) for r in runs.drop_duplicates("arm").itertuples()),
                  key=lambda a: (*A.order_key(a.label, order), a.framework))


def comparisons(data: StoreData, runs: pd.DataFrame, per: pd.DataFrame, task: str,
                metric: str, order: list[str], mode: str, family: str) -> pd.DataFrame:
    """Every comparison of `task`: the primary family its sweeps declared, then the rest."""
    mine = runs[runs["task"] == task]
    arms = arm_list(mine, order)
    declared = primary.for_task(primary.declared(data.parents), task, data.runs, runs,
                                data.parents, arms)
    return compare.compare(per[per["task"] == task], arms, metric, mode, family, declared,
                           _predictions(data.uri, per[per["task"] == task], declared))


def _predictions(uri: str, per: pd.DataFrame, declared: list) -> dict:
    """{arm: {seed: test predictions}} of the arms the primary questions compare."""
    wanted = {side.arm for d in declared for side in (d.a, d.b) if side is not None}
    mine = per[per["arm"].isin(wanted)]
    if mine.empty:
        return {}
    found = load.test_predictions(uri, list(mine["run_id"]))
    out: dict = {}
    for r in mine.itertuples():
        if r.run_id in found:
            out.setdefault(r.arm, {})[int(r.seed)] = found[r.run_id]
    return out


def forest_data(summary: pd.DataFrame, claims: pd.DataFrame, c: pd.DataFrame, metric: str,
                mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the forest plot draws: per arm ours (std, MC) and the published number in the
    compared mode; per testable primary comparison the difference with its interval at the
    family's level, the equivalence margin and whether the difference survives Holm."""
    numbers = dict(zip(claims["arm"], claims["numbers"], strict=True)) if len(claims) else {}
    arms = pd.DataFrame({
        "name": [f"{r.label} ({r.framework})" for r in summary.itertuples()],
        **{f"{m}_{x}": summary.get(f"{metric}_{m}_{x}", np.nan)
           for m in MODES for x in ("mean", "low", "high")},
        "published": [part3.preferred(numbers[a], metric, mode) if a in numbers else np.nan
                      for a in summary["arm"]],
    })
    first = c[(c["family"] == "primary") & c["p"].notna()]
    # the interval at the family's level (alpha / m), the one that agrees with the verdict
    diffs = pd.DataFrame({"name": first["declared"], "diff": first["diff"],
                          "low": first["family_low"], "high": first["family_high"],
                          "margin": first["margin"], "resolved": first["p_holm"] < ALPHA})
    return arms, diffs.reset_index(drop=True)


def part3_blocks(task: str, runs: pd.DataFrame, summary: pd.DataFrame, c: pd.DataFrame,
                 metric: str) -> tuple[list, pd.DataFrame]:
    """The published-beside-ours table of a task and the verdict on each primary comparison
    the source also made; returns the blocks and the numeric table (for tests)."""
    claims = part3.claims(runs[runs["task"] == task])
    if claims.empty:
        return [], pd.DataFrame()
    frame = part3.table(claims, summary, metric)
    blocks: list = [Heading(task, 3)]
    for source, g in frame.groupby("source", sort=False):
        shown, notes = part3.text(g, summary)
        blocks += [Table(shown, f"{source}: its single published run per arm beside our mean "
                                "± 95% CI over seeds (std = standard evaluation, MC = MC "
                                "dropout) and the 95% prediction interval of one new run of "
                                "ours, the interval a single run is judged by. Ranks: arms "
                                f"ordered by test {fmt.metric_name(metric)} within their "
                                "framework (1 = best; theirs from their standard or unstated "
                                "number, ours from standard evaluation). Their epoch was picked "
                                "on the test set, ours on the validation set.", kind="wide")]
        if notes:
            blocks.append(Bullets([f"[{k}] Stated differences: {v}" for v, k in notes.items()]))
    verdicts = part3.verdicts(claims, c)
    judged = frame[frame["position"] != ""]
    where = judged["position"].value_counts()
    ranked = frame.drop_duplicates("arm").dropna(subset=["part3_rank", "our_rank"])
    same = int((ranked["part3_rank"] == ranked["our_rank"]).sum())
    consistent = where.get("consistent", 0)
    blocks.append(Para(
        f"**Verdict.** {consistent} of {len(judged)} published numbers are consistent with one "
        f"run of ours ({where.get('above', 0)} above, {where.get('below', 0)} below the 95% "
        "prediction interval)"
        + (": one run of ours could have produced every one of them." if consistent == len(judged)
           and len(judged) else ".")
        + f" Within each framework, the ranking by {fmt.metric_name(metric)} puts {same} of "
        f"{len(ranked)} arms at the same place; our ranks order means that seed noise may not "
        "separate, theirs single runs."
        + (" Per primary comparison where both arms carry a published number:" if verdicts else
           " No primary comparison joins two arms that both carry a published number.")))
    if verdicts:
        blocks.append(Bullets(verdicts))
    return blocks, frame


def no_part3(tasks_with: list[str]) -> list:
    if tasks_with:
        return []
    return [Para("No run in this report comes from a preset that reproduces a published "
                 "experiment (an entry with `match: preset` in conf/published.yaml, such as "
                 "the presets conf/preset/part3_imdb_*.yaml).")]


def appendix(tasks: list[str], comparisons_: dict[str, pd.DataFrame]) -> list:
    blocks: list = [Para(
        "Every pairwise comparison, in one table per task. *primary*: declared by the sweep, "
        "Holm-corrected within that family (discussed in section 2). *exploratory*: found "
        "automatically (arms that differ in one factor), p not corrected: leads for a future "
        "study, not findings. *all*: no sweep of the task declared primary comparisons, so the "
        "automatic ones are Holm-corrected together, as before primary families existed.")]
    for task in tasks:
        blocks += [Heading(task, 3), *text.appendix_blocks(comparisons_[task])]
    return blocks
