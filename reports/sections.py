"""The sections that answer questions: the comparisons per task (primary family, exploratory
rest), the forest plot's data, and Part 3 beside us with the verdict on it. Kept apart from
`reports.report`, which assembles every section in order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.metrics import MODES
from reports import arms as A
from reports import compare, fmt, part3, primary, text
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
    return compare.compare(per[per["task"] == task], arms, metric, mode, family, declared)


def forest_data(summary: pd.DataFrame, claims: pd.DataFrame, c: pd.DataFrame, metric: str,
                mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the forest plot draws: per arm ours (std, MC) and the published number in the
    compared mode; per testable primary comparison the difference and whether it survives."""
    numbers = dict(zip(claims["arm"], claims["numbers"], strict=True)) if len(claims) else {}
    arms = pd.DataFrame({
        "name": [f"{r.label} ({r.framework})" for r in summary.itertuples()],
        **{f"{m}_{x}": summary.get(f"{metric}_{m}_{x}", np.nan)
           for m in MODES for x in ("mean", "low", "high")},
        "published": [part3.preferred(numbers[a], metric, mode) if a in numbers else np.nan
                      for a in summary["arm"]],
    })
    first = c[(c["family"] == "primary") & c["p"].notna()]
    diffs = pd.DataFrame({"name": first["declared"], "diff": first["diff"],
                          "low": first["low"], "high": first["high"],
                          "resolved": first["p_holm"] < ALPHA})
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
        blocks += [Table(shown, f"{source}: its single published number per arm beside our mean "
                                "± 95% CI over seeds (std = standard evaluation, MC = MC "
                                "dropout). Ranks: arms ordered by test "
                                f"{fmt.metric_name(metric)} within this table (1 = best; "
                                "theirs from their standard or unstated number, ours from "
                                "standard evaluation). Our epochs are selected on the "
                                "validation set (column *our epoch selected on*), never on "
                                "the test set; the source's selection is among its stated "
                                "differences.", kind="wide")]
        if notes:
            blocks.append(Bullets([f"[{k}] Stated differences: {v}" for v, k in notes.items()]))
    verdicts = part3.verdicts(claims, c)
    inside = frame[frame["inside"] != ""]
    ranked = frame.drop_duplicates("arm").dropna(subset=["part3_rank", "our_rank"])
    where = inside["inside"].value_counts()
    same = int((ranked["part3_rank"] == ranked["our_rank"]).sum())
    tau = part3.kendall_tau(list(ranked["part3_rank"]), list(ranked["our_rank"]))
    blocks.append(Para(
        f"**Verdict.** Of {len(inside)} published numbers with an interval here, "
        f"{where.get('inside', 0)} lie inside our 95% CI ({where.get('above', 0)} above, "
        f"{where.get('below', 0)} below). The ranking by {fmt.metric_name(metric)} puts "
        f"{same} of {len(ranked)} arms at the same place"
        + (f" (Kendall's τ between the two rankings {tau:+.2f}; ours ranks means that seed "
           "noise may not separate)." if fmt.finite(tau) else ".")
        + (" Per primary comparison the source also made (right = our difference is "
           "significant after Holm in the same direction; wrong = significant in the opposite "
           "direction; within noise = not significant):" if verdicts else
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
