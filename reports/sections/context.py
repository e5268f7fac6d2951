"""What a section is, and what every section reads.

A section is a title and a function that writes its Markdown blocks from the `Context`; one that
draws figures from the loaded runs alone may submit them first (`draw`), so the workers draw
while the main process computes the tables. A block is a Markdown string or a figure still being
drawn (a future of `figures.save.Saved`), written out once it is done. The numbers several
sections share (each task's summary and comparisons) are computed once, on first use, and kept
in `Numbers` with the tables the sections compute for themselves, for the tests to check.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reports import markdown
from reports.analysis import compare, tables
from reports.analysis.health import Health
from reports.figures.pool import render
from reports.metrics import task_metrics
from reports.store.load import StoreData

Part = str | Future


@dataclass
class Numbers:
    """The numeric tables behind the report, by task (tests compare these with the store)."""

    summaries: dict[str, pd.DataFrame] = field(default_factory=dict)
    comparisons: dict[str, pd.DataFrame] = field(default_factory=dict)
    mc: dict[str, pd.DataFrame] = field(default_factory=dict)
    cost: dict[str, pd.DataFrame] = field(default_factory=dict)
    part3: dict[str, pd.DataFrame] = field(default_factory=dict)
    forest: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)


@dataclass
class Context:
    """The usable runs with their arms, per-run values and histories, the options of the build,
    where figures go, each section's numbered heading and the numbers computed so far."""

    data: StoreData
    health: Health
    runs: pd.DataFrame
    per: pd.DataFrame
    wide: pd.DataFrame
    tasks: list[str]
    order: list[str]
    fig_dir: Path
    pool: Any  # a figures.pool.pool() executor
    filters: str
    mode: str
    family: str
    headings: dict[str, str]  # title -> numbered heading ("Run health" -> "8. Run health")
    numbers: Numbers

    def figure(self, kind: str, name: str, title: str, *args: Any) -> Future:
        """Submit a figure; the section holds the future and the report writes it when done."""
        return self.pool.submit(render, kind, self.fig_dir, name, title, *args)

    def task_runs(self, task: str) -> pd.DataFrame:
        """The usable runs of one task."""
        return self.runs[self.runs["task"] == task]

    def task_wide(self, task: str) -> pd.DataFrame:
        """The per-epoch histories of one task's usable runs, one row per (run, epoch)."""
        return self.wide[self.wide["run_id"].isin(self.task_runs(task)["run_id"])]

    def metric(self, task: str) -> str:
        """The task's selection metric (perplexity, accuracy)."""
        return task_metrics(task, self.task_runs(task)["metrics"].iloc[0])[0]

    def summary(self, task: str) -> pd.DataFrame:
        """Per arm of `task`: seeds, means and intervals (`analysis.tables.summary`)."""
        if task not in self.numbers.summaries:
            self.numbers.summaries[task] = tables.summary(self.per, task, self.order)
        return self.numbers.summaries[task]

    def comparisons(self, task: str) -> pd.DataFrame:
        """Every paired comparison of `task`, the primary family first."""
        if task not in self.numbers.comparisons:
            self.numbers.comparisons[task] = compare.for_task(
                self.data, self.runs, self.per, task, self.metric(task), self.order, self.mode,
                self.family)
        return self.numbers.comparisons[task]

    def heading(self, title: str) -> str:
        """A section's heading with its number ("8. Run health")."""
        return self.headings[title]

    def number(self, title: str) -> str:
        """A section's number as the text refers to it ("2", "Appendix A")."""
        return self.headings[title].split(". ", 1)[0]

    def link(self, title: str, text: str | None = None) -> str:
        """A link to a section, its title as the text unless `text` is given."""
        return markdown.link(text or title, self.heading(title))


def plot_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Only the columns a figure needs: less to send to a worker process."""
    return runs[["run_id", "label", "framework"]]


@dataclass(frozen=True)
class Section:
    """A section: its title (numbered by its place in `reports.sections.ORDER`), the function
    that writes its blocks, and the one that submits its figures early (an empty dict when it
    has none to draw before the tables exist)."""

    title: str
    write: Callable[[Context, dict], list[Part]]
    draw: Callable[[Context], dict] = field(default=lambda ctx: {})
