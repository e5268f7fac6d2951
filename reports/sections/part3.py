"""Section "Part 3 beside us": the single published runs a preset reproduces, set against one
run of ours (the prediction interval, never our mean's interval), the rankings within each
framework, and each primary question the source also made against our verdict."""

from __future__ import annotations

import pandas as pd

from reports import fmt, markdown
from reports.analysis import part3 as P
from reports.analysis import published
from reports.sections import part3_table, titles
from reports.sections.context import Context, Part, Section
from reports.sections.part3_table import POSITION_WORDS


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """Per task with a reproduced preset its tables and verdict; else why there are none."""
    blocks: list[Part] = []
    for task in ctx.tasks:
        found, frame = task_blocks(task, ctx.runs, ctx.summary(task), ctx.comparisons(task),
                                   ctx.metric(task))
        if len(frame):
            ctx.numbers.part3[task] = frame
        blocks += found
    return blocks or [
        "No run in this report comes from a preset that reproduces a published experiment (an "
        "entry with `match: preset` in conf/published.yaml, such as the presets "
        "conf/preset/part3_imdb_*.yaml)."]


def task_blocks(task: str, runs: pd.DataFrame, summary: pd.DataFrame, c: pd.DataFrame,
                metric: str) -> tuple[list[str], pd.DataFrame]:
    """The published-beside-ours table of a task and the verdict on each primary comparison
    the source also made; returns the blocks and the numeric table (for tests)."""
    claims = P.claims(runs[runs["task"] == task])
    if claims.empty:
        return [], pd.DataFrame()
    frame = P.table(claims, summary, metric)
    blocks = [markdown.heading(task, 3)]
    for source, g in frame.groupby("source", sort=False):
        shown, notes = part3_table.text(g, summary)
        blocks.append(markdown.table(
            shown, f"{source}: its single published run per arm beside our mean ± 95% CI over "
            "seeds (std = standard evaluation, MC = MC dropout) and the 95% prediction interval "
            "of one new run of ours, the interval a single run is judged by. Ranks: arms "
            f"ordered by test {fmt.metric_name(metric)} within their framework (1 = best; "
            "theirs from their standard or unstated number, ours from standard evaluation). "
            "Their epoch was picked on the test set, ours on the validation set.", text=True))
        if notes:
            blocks.append(markdown.bullets([f"[{k}] Stated differences: {v}"
                                            for v, k in notes.items()]))
    found = verdicts(claims, c)
    blocks.append(_verdict(frame, metric, bool(found)))
    if found:
        blocks.append(markdown.bullets(found))
    return blocks, frame


def _verdict(frame: pd.DataFrame, metric: str, any_verdicts: bool) -> str:
    """How many published numbers one run of ours could have produced, and the rankings."""
    judged = frame[frame["position"] != ""]
    where = judged["position"].value_counts()
    ranked = frame.drop_duplicates("arm").dropna(subset=["part3_rank", "our_rank"])
    same = int((ranked["part3_rank"] == ranked["our_rank"]).sum())
    consistent = where.get("consistent", 0)
    return (
        f"**Verdict.** {consistent} of {len(judged)} published numbers are consistent with one "
        f"run of ours ({where.get('above', 0)} above, {where.get('below', 0)} below the 95% "
        "prediction interval)"
        + (": one run of ours could have produced every one of them." if consistent == len(judged)
           and len(judged) else ".")
        + f" Within each framework, the ranking by {fmt.metric_name(metric)} puts {same} of "
        f"{len(ranked)} arms at the same place; our ranks order means that seed noise may not "
        "separate, theirs single runs."
        + (" Per primary comparison where both arms carry a published number:" if any_verdicts
           else " No primary comparison joins two arms that both carry a published number."))


def verdicts(found: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """Per primary comparison whose two arms carry the source's number: what the source states
    about the pair (its `conclusions`, never the sign of its two runs) against our verdict, and
    its one-run difference against the prediction interval of one paired difference of ours."""
    by_arm = {c.arm: c for c in found.itertuples()}
    out = []
    for r in comparisons[comparisons["family"] == "primary"].itertuples():
        a, b = by_arm.get(r.a_arm), by_arm.get(r.b_arm)
        if a is None or b is None:
            continue
        theirs = P.preferred(a.numbers, r.metric, r.mode) - P.preferred(b.numbers, r.metric, r.mode)
        if fmt.finite(theirs):
            out.append(verdict_sentence(r, theirs, P.stated(a, b)))
    return out


def verdict_sentence(r, theirs: float,
                     stated_: published.Conclusion | None = None) -> str:
    """One primary comparison against the source: its stated conclusion (if any), our verdict,
    and where its one-run difference lies against one paired difference of ours."""
    m = r.metric
    where, low, high = P.difference_position(r, theirs)
    against = (f"against one paired difference of ours, 95% prediction interval "
               f"{fmt.interval(m, low, high)} (n={r.n}): "
               f"**{POSITION_WORDS.get(where, 'no interval')}**")
    ours = f"our verdict: {r.verdict}"
    if not stated_:
        return (f"**{r.declared}**: no stated conclusion; published difference "
                f"{fmt.with_unit(m, theirs, True)} (one run each) {against}; {ours}.")
    return (f"**{r.declared}**: the source states \"{stated_.says}\" ({stated_.where}; A "
            f"{stated_.direction} than B); "
            f"{ours}; published difference {fmt.with_unit(m, theirs, True)} {against}.")


SECTION = Section(titles.PART3, write)
