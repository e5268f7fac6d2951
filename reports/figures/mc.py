"""Part 3's histogram: MC minus standard validation metric over every MC-evaluated epoch of
every seed, per arm, one colour per framework."""

from __future__ import annotations

import matplotlib.patches
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.metrics import MC, STD, VALID
from experiments.metrics import key as metric_key
from reports import fmt
from reports.figures.layout import fit
from reports.figures.style import FRAMEWORK_COLORS
from reports.metrics import HIGHER_IS_BETTER


def mc_histograms(wide: pd.DataFrame, runs: pd.DataFrame, labels: list[str], metric: str,
                  frameworks: list[str]) -> Figure:
    """Part 3's plot: per arm, the histogram of (MC - standard) validation metric over every
    epoch with an MC evaluation, of every seed, one colour per framework."""
    std, mc = metric_key(VALID, metric, STD), metric_key(VALID, metric, MC)
    merged = wide.merge(runs[["run_id", "label", "framework"]], on="run_id")
    ncols = min(4, max(1, len(labels)))
    nrows = -(-len(labels) // ncols)
    fig = Figure(figsize=(3.0 * ncols, 1.9 * nrows))
    grid = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0, hspace=0)
    axes = np.ravel(grid)
    scale = fmt.SCALE.get(metric, 1.0)
    for ax, label in zip(axes, labels, strict=False):
        g = merged[merged["label"] == label]
        diffs = {f: ((g.loc[g["framework"] == f, mc] - g.loc[g["framework"] == f, std])
                     * scale).dropna().to_numpy() for f in frameworks if std in g and mc in g}
        finite = [d for d in diffs.values() if len(d)]
        if finite:
            edges = _edges(np.concatenate(finite))
            for f, d in diffs.items():
                if len(d):
                    ax.hist(d, bins=edges, histtype="stepfilled", alpha=0.45,
                            color=FRAMEWORK_COLORS.get(f), label=f)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(label, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.locator_params(nbins=4)
    for ax in axes[len(labels):]:
        ax.set_visible(False)
    better = "higher" if HIGHER_IS_BETTER.get(metric, True) else "lower"
    title = fig.suptitle(f"MC minus standard, validation {fmt.metric_name(metric)} per "
                         f"MC-evaluated epoch of every seed ({better} = MC better)", fontsize=10)
    handles = [matplotlib.patches.Patch(color=FRAMEWORK_COLORS.get(f), alpha=0.45, label=f)
               for f in frameworks]
    legend = fig.legend(handles=handles, loc="upper center", fontsize=8, frameon=False,
                        ncols=max(1, len(frameworks)))
    fit(fig, grid, legend, "top", title)
    return fig


def _edges(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        lo, hi = lo - 0.5 * (abs(lo) or 1e-3), hi + 0.5 * (abs(hi) or 1e-3)
    return np.linspace(lo, hi, 21)
