"""Section "MC dropout minus standard evaluation": per task Part 3's histogram of the per-epoch
validation differences, and per arm the mean difference with its interval over seeds."""

from __future__ import annotations

from concurrent.futures import Future

import pandas as pd

from reports import fmt, markdown
from reports.analysis import tables
from reports.sections import titles
from reports.sections.context import Context, Part, Section, plot_runs
from reports.sections.curves import labels


def draw(ctx: Context) -> dict[str, Future]:
    """Every task's histograms, submitted before the tables are computed."""
    out = {}
    for task in ctx.tasks:
        mine, metric = ctx.task_runs(task), ctx.metric(task)
        out[task] = ctx.figure(
            "mc", f"mc_minus_std_{task}", f"{task}: MC minus standard validation "
            f"{fmt.metric_name(metric)}, every MC-evaluated epoch of every seed",
            ctx.task_wide(task), plot_runs(mine), labels(mine, ctx.order), metric,
            sorted(mine["framework"].unique()))
    return out


def write(ctx: Context, drawn: dict[str, Future]) -> list[Part]:
    """How the differences are taken, then per task the histograms and the table."""
    blocks: list[Part] = [
        "Per-epoch validation differences (Part 3's histogram) and, per arm, the mean "
        "difference with a 95% t interval over seeds: on the test set at the best epoch, and "
        "averaged over the validation epochs of a run that have an MC evaluation (every epoch, "
        "or with `train.mc_every` = 0 only the selected one)."]
    for task in ctx.tasks:
        ctx.numbers.mc[task] = m = tables.mc_minus_std(ctx.per, task, ctx.order)
        blocks += [markdown.heading(task, 3), drawn[task],
                   markdown.table(text(m), "MC − standard (positive = MC higher)")]
    return blocks


def text(m: pd.DataFrame) -> pd.DataFrame:
    """The MC-minus-standard table as text."""
    return pd.DataFrame({
        "variant": m["label"], "framework": m["framework"],
        "metric": [fmt.metric_name(x) for x in m["metric"]], "seeds": m["n"].astype(str),
        "test MC − std": [fmt.pm(r.metric, r.test_diff_mean, r.test_diff_half, True)
                          for r in m.itertuples()],
        "valid MC − std (mean over epochs)": [
            fmt.pm(r.metric, r.valid_diff_mean, r.valid_diff_half, True) for r in m.itertuples()],
        "epochs MC better / worse": [
            f"{100 * b:.0f}% / {100 * w:.0f}%" if fmt.finite(b) else fmt.DASH
            for b, w in zip(m["mc_better_share"], m["mc_worse_share"], strict=True)],
    })


SECTION = Section(titles.MC, write, draw)
