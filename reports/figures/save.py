"""A drawn figure saved twice: PNG (inlined in the HTML page, linked from the Markdown) and SVG
(text as text), with the same bytes for the same data."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure


@dataclass
class Saved:
    """A saved figure: its name, the caption the report shows, its two files and the PNG's bytes."""

    name: str
    title: str
    png: Path
    svg: Path
    png_bytes: bytes


def save(fig: Figure, out: Path, name: str, title: str) -> Saved:
    """Write `fig` as `<name>.png` and `<name>.svg` under `out` (no date in the SVG)."""
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    png, svg = out / f"{name}.png", out / f"{name}.svg"
    png.write_bytes(buf.getvalue())
    fig.savefig(svg, format="svg", metadata={"Date": None})  # same data, same bytes
    return Saved(name, title, png, svg, buf.getvalue())
