"""Section "Primary questions": per task, the questions the sweep declared in words (family,
verdicts, what the intervals cover), one sentence per question and their table; without
declared questions, one paragraph saying where the automatic comparisons are; then any value
an earlier stage of the study chose for its arms, with the grid it was chosen from."""

from __future__ import annotations

import pandas as pd

from reports import markdown
from reports.sections import comparison_table, titles, tuned_table
from reports.sections.context import Context, Part, Section
from reports.stats import ALPHA


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """Per task its declared questions; one line when no run is usable."""
    appendix = ctx.link(titles.APPENDIX, ctx.heading(titles.APPENDIX))
    blocks: list[Part] = []
    for task in ctx.tasks:
        blocks += [markdown.heading(task, 3), *task_blocks(ctx.comparisons(task), appendix),
                   *tuned_table.blocks(ctx.data.tuning, task)]
    return blocks or ["No usable runs."]


def task_blocks(c: pd.DataFrame, appendix: str) -> list[str]:
    """The primary questions of one task in words, then their table; without declared primary
    comparisons, one paragraph saying so and where the automatic ones are (no prose for them):
    `appendix` links to them."""
    first = c[c["family"] == "primary"]
    if first.empty:
        every = c[c["family"] == "all"]
        if every.empty:
            return ["No primary comparisons declared and no comparable pairs of arms."]
        resolved = int((every["p_holm"] < ALPHA).sum())
        return [
            f"**No primary comparisons declared** (the selected sweeps carry no "
            f"`primary_comparisons` tag: a screen, or a sweep run before sweeps declared their "
            f"questions); all {len(every)} automatic comparisons are Holm-corrected as one "
            f"screening family; "
            f"{resolved} survive the correction. They are listed in the appendix, {appendix}, "
            "not discussed here: without a question stated in advance they are a screen, not an "
            "answer."]
    testable = int(first["p"].notna().sum())
    level = first["alpha_family"].dropna()
    at = f"α/m = {level.iloc[0]:.4g}" if len(level) else "α/m"
    declared = first["declared_seeds"].dropna()
    seeds = int(declared.max()) if len(declared) else 0
    extra = first[first["n"] > seeds] if seeds else first.iloc[:0]
    return [
        f"Family: the {len(first)} comparisons the sweep declared ({testable} testable "
        "here), Holm-corrected together (α = 0.05; an untestable one counts as not "
        "rejected). Verdicts: A or B better (paired t-test, Holm), **equivalent** within "
        "the sweep's declared margin (paired two one-sided tests, Holm over the same "
        "family), or **undecided**, with what an answer would cost. Runs are paired by "
        "seed even where the two arms differ in other settings, listed under *also differs "
        f"in*. *MDE*: the smallest difference this design (n seeds, the observed SD of the "
        f"paired differences) detects with 80% power in a two-sided paired t-test, at the "
        f"family's level {at} (Holm's first step) and at α = 0.05 before correction. "
        f"*CI at α/m*: the difference's t interval at that level (Bonferroni), which holds 0 "
        "whenever the verdict is undecided; the sentences also give the 95% one."
        + " The verdicts pair runs by seed on this one test set: they answer whether a "
        "difference exceeds training noise. Where both arms logged their test predictions, "
        "*95% CI, seeds + test examples* adds the sampling of the test set itself (a "
        "population of reviews, not these ~2,500), and a win that interval does not confirm "
        "is flagged as not robust to it."
        + (f" Seeds declared before the first run: {seeds}." if seeds else
           " The sweep declared no seed count.")
        + (f" **{len(extra)} comparison(s) have more paired seeds than declared**: seeds "
           "added after looking at p-values are optional stopping; read those verdicts "
           "with care." if len(extra) else ""),
        markdown.bullets(list(first["sentence"])),
        markdown.table(comparison_table.table(first, primary=True), "Primary comparisons"),
    ]


SECTION = Section(titles.PRIMARY, write)
