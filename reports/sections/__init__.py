"""The report is a list of sections: `ORDER` below is that list, and the only place that
numbers them. Sections in the front matter come before the first heading (the answers), body
sections are numbered 1, 2, ... and appendices lettered A, B, ...; a section that points to
another one asks the context for its numbered heading (`Context.heading`, `Context.link`).

One module per section, each with its `SECTION` (title, writer, and the figures it may submit
before the tables exist): `answers`, `summary`, `primary`, `part3`, `curves`, `mc`, `cost`,
`published`, `health`, `provenance`, `appendix`. Shared by some of them: `context` (what a
section reads), `titles`, `summary_table`, `comparison_table`, `part3_table` and
`tuned_table`.
"""

from __future__ import annotations

from reports.sections import (
    answers,
    appendix,
    cost,
    curves,
    health,
    mc,
    part3,
    primary,
    provenance,
    published,
    summary,
)
from reports.sections.context import Section

FRONT, BODY, APPENDIX = "front", "body", "appendix"

ORDER: tuple[tuple[str, Section], ...] = (
    (FRONT, answers.SECTION),
    (BODY, summary.SECTION),
    (BODY, primary.SECTION),
    (BODY, part3.SECTION),
    (BODY, curves.SECTION),
    (BODY, mc.SECTION),
    (BODY, cost.SECTION),
    (BODY, published.SECTION),
    (BODY, health.SECTION),
    (BODY, provenance.SECTION),
    (APPENDIX, appendix.SECTION),
)


def headings(order: tuple[tuple[str, Section], ...] = ORDER) -> list[str | None]:
    """Each section's heading by its place in `order`: "3. Part 3 beside us", "Appendix A. All
    pairwise comparisons"; None for the front matter, which has none."""
    out: list[str | None] = []
    numbered = lettered = 0
    for part, section in order:
        if part == BODY:
            numbered += 1
            out.append(f"{numbered}. {section.title}")
        elif part == APPENDIX:
            out.append(f"Appendix {chr(ord('A') + lettered)}. {section.title}")
            lettered += 1
        else:
            out.append(None)
    return out
