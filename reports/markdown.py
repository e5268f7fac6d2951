"""Markdown writers: the report is written once, as Markdown (`report.md`), and the HTML page is
rendered from that text (`reports.page`). Each writer returns one block without a trailing
newline; `document` joins blocks with a blank line.

Tables are GitHub-flavoured: a cell's `|` is escaped and a newline becomes a space. A table of
text (`text=True`) marks every column left-aligned in its delimiter row (`:---`); the page shows
such a table left-aligned, any other one with its numbers to the right.
"""

from __future__ import annotations

import re

import pandas as pd

from reports.figures.save import Saved

FIGURES = "figures"  # the figures' folder, relative to report.md


def slug(text: str) -> str:
    """A heading's anchor: what links to it use (`#8-run-health`) and the page sets as its id."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def link(text: str, heading: str) -> str:
    """A link to a heading of the same report."""
    return f"[{text}](#{slug(heading)})"


def heading(text: str, level: int = 2) -> str:
    """An ATX heading (`## text`); the page gives it the id `slug(text)`."""
    return "#" * level + " " + text


def bullets(items: list[str]) -> str:
    """A list, one item per line (an item never holds a newline)."""
    return "\n".join(f"- {item}" for item in items)


def _cell(value: object) -> str:
    """A table cell: a `|` would end the cell and a newline the row."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(frame: pd.DataFrame, caption: str = "", text: bool = False) -> str:
    """`frame`'s cells (already formatted) as a table, the caption in italics above it."""
    cols = [_cell(c) for c in frame.columns]
    rows = ["| " + " | ".join(cols) + " |",
            "|" + "|".join(":---" if text else "---" for _ in cols) + "|"]
    rows += ["| " + " | ".join(_cell(v) for v in row) + " |"
             for row in frame.itertuples(index=False)]
    return (f"*{caption}*\n\n" if caption else "") + "\n".join(rows)


def figure(saved: Saved) -> str:
    """A figure as its PNG with the caption below it and a link to the SVG."""
    return (f"![{saved.title}]({FIGURES}/{saved.png.name})\n\n"
            f"*{saved.title}* ([SVG]({FIGURES}/{saved.svg.name}))")


def document(title: str, blocks: list[str]) -> str:
    """The whole report: its title, then every non-empty block, a blank line apart."""
    return "\n\n".join([heading(title, 1), *(b for b in blocks if b)]) + "\n"
