"""Markdown as the documentation tests read it (tests/test_docs.py, test_architecture_doc.py)."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `#` or `[x](y)` inside a fence is not Markdown)."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out
