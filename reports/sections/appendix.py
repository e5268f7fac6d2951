"""Appendix "All pairwise comparisons": every comparison of every task in one table per task,
primary, exploratory or (when no sweep declared primary ones) all Holm-corrected together, with
the question each pair answers in words."""

from __future__ import annotations

import pandas as pd

from reports import markdown
from reports.analysis.pairs import QUESTIONS
from reports.sections import comparison_table, titles
from reports.sections.context import Context, Part, Section


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """The families explained once, then every task's table and its questions."""
    blocks: list[Part] = [
        "Every pairwise comparison, in one table per task. *primary*: declared by the sweep, "
        "Holm-corrected within that family (discussed in section "
        f"{ctx.number(titles.PRIMARY)}). *exploratory*: found automatically (arms that differ "
        "in one factor), p not corrected: leads for a future study, not findings. *all*: no "
        "sweep of the task declared primary comparisons, so the automatic ones are "
        "Holm-corrected together, as before primary families existed."]
    for task in ctx.tasks:
        blocks += [markdown.heading(task, 3), *task_blocks(ctx.comparisons(task))]
    return blocks


def task_blocks(c: pd.DataFrame) -> list[str]:
    """One task's table, then the questions it lists in words."""
    if c.empty:
        return ["No comparisons (comparisons need two arms that share seeds)."]
    counts = c["family"].value_counts()
    words = ", ".join(f"{n} {comparison_table.FAMILY_WORDS[f]}" for f, n in counts.items())
    asked = [q for q in QUESTIONS if q in set(c["question"])]
    return [markdown.table(comparison_table.table(c), f"Every pairwise comparison: {words}. "
                           "Exploratory rows are not corrected for multiplicity: read them as "
                           "leads, not findings.", text=True),
            *([markdown.bullets([f"*{q}*: {QUESTIONS[q]}" for q in asked])] if asked else [])]


SECTION = Section(titles.APPENDIX, write)
