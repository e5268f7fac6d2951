"""The cost chart: each arm's training throughput relative to variant none of its framework."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.metrics import TRAIN_TOKENS_PER_S
from reports.figures.layout import fit
from reports.figures.style import FRAMEWORK_COLORS


def cost_chart(table: pd.DataFrame) -> Figure:
    """Training throughput relative to `none` of the same framework, per arm; the legend sits
    above the bars, never on them."""
    labels = list(dict.fromkeys(table["label"]))
    frameworks = list(dict.fromkeys(table["framework"]))
    fig = Figure(figsize=(6.0, 0.3 * len(labels) * max(1, len(frameworks)) + 0.2))
    ax = fig.subplots()
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    height = 0.8 / max(1, len(frameworks))
    y = np.arange(len(labels))
    for i, f in enumerate(frameworks):
        t = table[table["framework"] == f].set_index("label")
        vals = [t[f"{TRAIN_TOKENS_PER_S}_rel"].get(lab, np.nan) for lab in labels]
        ax.barh(y + i * height, vals, height=height, color=FRAMEWORK_COLORS.get(f), label=f)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_yticks(y + height * (len(frameworks) - 1) / 2, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("training tokens/s relative to variant none of the same framework")
    ax.grid(axis="x", alpha=0.3)
    legend = fig.legend(*ax.get_legend_handles_labels(), loc="upper center", fontsize=8,
                        frameon=False, ncols=max(1, len(frameworks)))
    fit(fig, np.array([[ax]]), legend, "top")
    return fig
