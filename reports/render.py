"""A tiny document model rendered twice: `report.md` (figures linked as files) and a
self-contained `report.html` (figures inlined as base64 PNG, CSS inline, no scripts), so the
HTML can be mailed or archived alone."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports.figures import Saved


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str  # inline markup: **bold**, `code`


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    frame: pd.DataFrame  # cells already formatted as text
    caption: str = ""
    kind: str = "plain"  # css class ("wide": left-aligned text columns)


@dataclass
class Image:
    figure: Saved


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---------------------------------------------------------------- Markdown


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document, figure_dir: str = "figures") -> str:
    lines = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            lines += [b.text, ""]
        elif isinstance(b, Bullets):
            lines += [f"- {item}" for item in b.items] + [""]
        elif isinstance(b, Table):
            if b.caption:
                lines += [f"*{b.caption}*", ""]
            cols = [_md_cell(c) for c in b.frame.columns]
            lines.append("| " + " | ".join(cols) + " |")
            lines.append("|" + "|".join("---" for _ in cols) + "|")
            for row in b.frame.itertuples(index=False):
                lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
            lines.append("")
        elif isinstance(b, Image):
            f = b.figure
            lines += [f"![{f.title}]({figure_dir}/{f.png.name})", "",
                      f"*{f.title}* ([SVG]({figure_dir}/{f.svg.name}))", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- HTML

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1250px;color:#1b1b1b;line-height:1.45;padding:0 16px}
h1{font-size:26px;margin-bottom:4px}h2{border-bottom:2px solid #ccd;padding-bottom:3px;
margin-top:34px}h3{margin-top:22px}
table{border-collapse:collapse;margin:8px 0 18px;font-size:13px;max-width:100%}
th,td{border:1px solid #c8ccd4;padding:3px 8px;text-align:right;vertical-align:top;
overflow-wrap:anywhere}
th{background:#e8ebf0}td:first-child,th:first-child{text-align:left}
tr:nth-child(even) td{background:#f6f7f9}
table.wide td,table.wide th{text-align:left}
caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:4px}
img{max-width:100%;border:1px solid #eee}code{background:#f1f2f4;padding:0 3px}
.toc{font-size:14px}.figcap{font-style:italic;font-size:13px;margin-top:-4px}
"""


def _inline(text: str) -> str:
    out = html.escape(str(text), quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return re.sub(r"\[([^\]]+)\]\(#([a-z0-9-]+)\)", r'<a href="#\2">\1</a>', out)


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{_inline(c)}</th>" for c in t.frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{_inline(v)}</td>" for v in row) + "</tr>"
                   for row in t.frame.itertuples(index=False))
    cap = f"<caption>{_inline(t.caption)}</caption>" if t.caption else ""
    return (f'<table class="{html.escape(t.kind)}">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def to_html(doc: Document) -> str:
    parts, toc = [], []
    for b in doc.blocks:
        if isinstance(b, Heading):
            anchor = slug(b.text)
            if b.level == 2:
                toc.append(f'<li><a href="#{anchor}">{html.escape(b.text)}</a></li>')
            parts.append(f'<h{b.level} id="{anchor}">{_inline(b.text)}</h{b.level}>')
        elif isinstance(b, Para):
            parts.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            parts.append(_table_html(b))
        elif isinstance(b, Image):
            data = base64.b64encode(b.figure.png_bytes).decode("ascii")
            alt = html.escape(b.figure.title)
            parts.append(f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
                         f'<figcaption class="figcap">{alt}</figcaption></figure>')
    nav = f'<nav class="toc"><ul>{"".join(toc)}</ul></nav>' if toc else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(doc.title)}</h1>{nav}{''.join(parts)}</body></html>\n")


def write(doc: Document, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, page = out / "report.md", out / "report.html"
    md.write_text(to_markdown(doc), encoding="utf-8")
    page.write_text(to_html(doc), encoding="utf-8")
    return md, page
