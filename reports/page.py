"""`report.md` -> a self-contained `report.html`: the Markdown rendered by markdown-it-py
(CommonMark with GitHub's tables, raw HTML off, so text never becomes markup) inside a Jinja2
template with the CSS inline, every figure's PNG inlined as base64 and no scripts, so the page
can be mailed or archived alone.

The page renders the very text of report.md: what the Markdown says is what the page shows. A
few touches between parsing and rendering: the first `#` heading becomes the page's title and
header, every heading gets the id its links use (`reports.markdown.slug`) and the second-level
ones a table of contents, a table whose delimiter row marks every column left-aligned gets
class `wide` instead of an alignment per cell (so plain cells stay `<td>`), bold is `<b>` as
the page has always written it, and an image whose file lies beside the Markdown is inlined.
"""

from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markdown_it import MarkdownIt
from markdown_it.token import Token

from reports.markdown import slug

TEMPLATE = "page.html.j2"
LEFT = "text-align:left"


@dataclass
class Parsed:
    """A report's tokens after the touches above: its title, its table of contents (anchor,
    heading) and the body's tokens."""

    title: str
    toc: list[tuple[str, str]] = field(default_factory=list)
    body: list[Token] = field(default_factory=list)


def _parser() -> MarkdownIt:
    """CommonMark plus GitHub's tables; raw HTML off, so `<x>` in the text stays text."""
    return MarkdownIt("commonmark", {"html": False, "xhtmlOut": False}).enable("table")


def parse(markdown: str, base: Path) -> Parsed:
    """Tokens of `markdown` with the touches applied; images relative to `base` are inlined."""
    tokens = _parser().parse(markdown)
    found = Parsed("")
    if len(tokens) >= 3 and tokens[0].type == "heading_open" and tokens[0].tag == "h1":
        found.title, tokens = tokens[1].content, tokens[3:]
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            text = tokens[i + 1].content
            token.attrSet("id", slug(text))
            if token.tag == "h2":
                found.toc.append((slug(text), text))
        elif token.type == "table_open":
            _table(tokens, i)
        elif token.type == "inline":
            _inline(token.children or [], base)
    found.body = tokens
    return found


def _table(tokens: list[Token], start: int) -> None:
    """Alignment moves from the cells to the table: class `wide` when every column is left."""
    end = next(i for i in range(start, len(tokens)) if tokens[i].type == "table_close")
    cells = [t for t in tokens[start:end] if t.type in ("th_open", "td_open")]
    if cells and all(t.attrGet("style") == LEFT for t in cells):
        tokens[start].attrSet("class", "wide")
    for t in cells:
        t.attrs.pop("style", None)


def _inline(children: list[Token], base: Path) -> None:
    """Bold as `<b>`; an image whose PNG lies under `base` inlined, so the page stands alone."""
    for child in children:
        if child.type in ("strong_open", "strong_close"):
            child.tag = "b"
        elif child.type == "image":
            path = base / urllib.parse.unquote(str(child.attrGet("src") or ""))
            if path.suffix == ".png" and path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                child.attrSet("src", f"data:image/png;base64,{data}")


def render(markdown: str, base: Path) -> str:
    """The HTML page of `markdown` (a report.md whose figures lie under `base`)."""
    md = _parser()
    found = parse(markdown, base)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent),
                             autoescape=True, keep_trailing_newline=True)
    return env.get_template(TEMPLATE).render(
        title=found.title, toc=found.toc, body=md.renderer.render(found.body, md.options, {}))
