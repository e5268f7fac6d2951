"""Section "Learning curves": per task, training loss and the validation metric per epoch, each
arm's mean over seeds with the band from its lowest to its highest seed."""

from __future__ import annotations

from concurrent.futures import Future

import pandas as pd

from reports import fmt, markdown
from reports.analysis.arms import order_key
from reports.sections import titles
from reports.sections.context import Context, Part, Section, plot_runs


def labels(runs: pd.DataFrame, order: list[str]) -> list[str]:
    """The arm labels of `runs` in report order (the figures' legend order)."""
    return sorted(runs["label"].unique(), key=lambda lab: order_key(lab, order))


def draw(ctx: Context) -> dict[str, Future]:
    """Every task's curves, submitted before the tables are computed."""
    out = {}
    for task in ctx.tasks:
        mine, metric = ctx.task_runs(task), ctx.metric(task)
        out[task] = ctx.figure(
            "curves", f"curves_{task}", f"{task}: training loss and validation "
            f"{fmt.metric_name(metric)} per epoch (MC where every epoch has it, else standard "
            "with the MC evaluations as dots); line = mean over seeds, band = lowest to highest "
            "seed", ctx.task_wide(task), plot_runs(mine), labels(mine, ctx.order),
            metric, sorted(mine["framework"].unique()))
    return out


def write(ctx: Context, drawn: dict[str, Future]) -> list[Part]:
    """Per task its curves figure, submitted earlier by `draw`."""
    blocks: list[Part] = []
    for task in ctx.tasks:
        blocks += [markdown.heading(task, 3), drawn[task]]
    return blocks


SECTION = Section(titles.CURVES, write, draw)
