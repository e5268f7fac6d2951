"""Colours shared by the figures, so that an arm or a framework looks the same in each."""

from __future__ import annotations

import matplotlib

FRAMEWORK_COLORS = {"torch": "#d62728", "keras": "#1f77b4"}


def colors(labels: list[str]) -> dict[str, tuple]:
    """One stable colour per arm label, the same in every panel and figure."""
    cmap = matplotlib.colormaps["tab20" if len(labels) > 10 else "tab10"]
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}
