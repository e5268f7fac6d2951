"""The report, assembled: the loaded store's usable runs grouped into arms, then every section
of `reports.sections.ORDER` in turn, under the heading its place gives it, written once as
Markdown. Figures are drawn in worker processes while the sections compute their tables, and
each takes its place in the text when it is done."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports import markdown
from reports.analysis import arms as A
from reports.analysis import tables
from reports.analysis.health import Health
from reports.figures.pool import pool
from reports.figures.save import Saved
from reports.sections import ORDER, headings
from reports.sections.context import Context, Numbers, Part
from reports.store.load import StoreData

TASK_ORDER = ["ptb", "imdb", "rt"]


@dataclass
class Built(Numbers):
    """The report's Markdown, its figures in the order it shows them, and the numeric tables
    behind it (tests compare these with the store)."""

    markdown: str = ""
    per_run: pd.DataFrame = field(default_factory=pd.DataFrame)
    figures: list[Saved] = field(default_factory=list)


def build(data: StoreData, health: Health, out: Path, filters: str = "",
          compare_mode: str = "std", title: str = "Recurrent dropout: comparison report",
          family: str = "task") -> Built:
    """The whole report as Markdown, plus the numeric tables behind it; figures go to
    `out`/figures."""
    runs = A.assign(health.usable) if len(health.usable) else health.usable.assign(
        arm=[], label=[], qualifier=[], setting=[], preset=[])
    per = tables.per_run(runs, data.history) if len(runs) else pd.DataFrame(
        columns=["task", "arm", "label", "framework", "seed"])
    tasks = sorted(runs["task"].unique(), key=lambda t: (
        TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t))
    built = Built(per_run=per)
    titled = headings()
    with pool() as workers:
        ctx = Context(data, health, runs, per, tables.wide_history(data.history), tasks,
                      A.variant_order(), out / "figures", workers, filters, compare_mode, family,
                      {s.title: h for (_, s), h in zip(ORDER, titled, strict=True) if h},
                      built)
        drawn = [section.draw(ctx) for _, section in ORDER]  # workers start on these
        parts: list[Part] = []
        for (_, section), heading, early in zip(ORDER, titled, drawn, strict=True):
            parts += [markdown.heading(heading)] if heading else []
            parts += section.write(ctx, early)
        blocks = [_written(part, built.figures) for part in parts]
    built.markdown = markdown.document(title, blocks)
    return built


def _written(part: Part, figures: list[Saved]) -> str:
    """A block as Markdown: a figure once drawn (and noted in `figures`), text as it is."""
    if isinstance(part, Future):
        saved = part.result()
        figures.append(saved)
        return markdown.figure(saved)
    return part
