"""The forest plot: a task's answer in one figure, before any prose.

Top panel: every arm's test metric, mean and 95% interval over seeds, standard and MC evaluation,
with the published single number where a run carries one (Part 3's), drawn over the band it is
judged by: the 95% prediction interval of one run of ours. Why: a single run is set against where
one run of ours lands, not against our mean's interval, which is sqrt(n + 1) times
narrower. Bottom panel: the paired difference A - B of each primary comparison with its
family-adjusted interval (level alpha/m), the equivalence margin behind it and the zero line; a
filled marker means the difference survives Holm's correction in the primary family.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reports import fmt
from reports.figures.layout import fit

STD, MC, PUBLISHED = "#1f4e79", "#e07b00", "black"
MARGIN = "#dfe9d8"  # the equivalence band behind a difference
PREDICTED = "#dcdcdc"  # the prediction interval of one run of ours, behind a published run
ROW_IN = 0.3  # inches per row of a panel


def _xerr(mean: pd.Series, low: pd.Series, high: pd.Series) -> np.ndarray:
    """Asymmetric error bars; a missing interval (one seed) draws none."""
    lo = (mean - low).to_numpy(dtype=float)
    hi = (high - mean).to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([lo, hi]), nan=0.0)


def forest_plot(arms: pd.DataFrame, diffs: pd.DataFrame, metric: str, mode: str) -> Figure:
    """`arms`: name, std_mean/low/high, mc_mean/low/high, published (NaN where none) and, if
    given, published_pi_low/high (the prediction interval it is judged by). `diffs`: name,
    diff, low, high, resolved (survives correction), margin; may be empty (no primary
    comparisons declared: the figure has the top panel only)."""
    scale = fmt.SCALE.get(metric, 1.0)
    panels = 2 if len(diffs) else 1
    heights = [max(1, len(arms)) * ROW_IN + 0.2] + ([len(diffs) * ROW_IN + 0.2] if panels == 2
                                                    else [])
    fig = Figure(figsize=(5.5, sum(heights)))
    grid = fig.subplots(panels, 1, squeeze=False, height_ratios=heights)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, hspace=0)
    ax = grid[0][0]
    y = np.arange(len(arms))
    shown = [(STD, "std", "o", -0.13, "standard"), (MC, "mc", "s", 0.13, "MC")]
    for colour, col, marker, shift, _ in shown:
        mean = arms[f"{col}_mean"]
        ax.errorbar(mean * scale, y + shift, xerr=_xerr(mean, arms[f"{col}_low"],
                                                        arms[f"{col}_high"]) * scale,
                    fmt=marker, ms=4.5, color=colour, capsize=2, lw=1.2)
    has_published = "published" in arms and arms["published"].notna().any()
    band = np.isfinite(arms.get("published_pi_low", pd.Series(np.nan, arms.index))
                       .to_numpy(dtype=float)) & arms["published"].notna().to_numpy() \
        if has_published else np.zeros(len(arms), dtype=bool)
    if band.any():
        low = arms["published_pi_low"].to_numpy(dtype=float)[band] * scale
        high = arms["published_pi_high"].to_numpy(dtype=float)[band] * scale
        ax.barh(y[band], high - low, left=low, height=0.7, color=PREDICTED, zorder=0)
    if has_published:
        ax.plot(arms["published"] * scale, y, "x", ms=7, mew=1.8, color=PUBLISHED)
    ax.set_yticks(y, list(arms["name"]), fontsize=8)
    ax.set_ylim(len(arms) - 0.5, -0.5)
    ax.set_xlabel(f"test {fmt.metric_name(metric)}: mean and 95% CI over seeds")
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=c, marker=m, ls="", label=f"ours, {name}")
               for c, _, m, _, name in shown]
    if has_published:
        handles.append(Line2D([], [], color=PUBLISHED, marker="x", ls="", mew=1.8,
                              label="published single run"))
    if band.any():
        handles.append(Patch(color=PREDICTED, label="one run of ours, 95% PI"))
    if panels == 2:
        dx = grid[1][0]
        yd = np.arange(len(diffs))
        resolved = diffs["resolved"].to_numpy(dtype=bool)
        err = _xerr(diffs["diff"], diffs["low"], diffs["high"]) * scale
        margin = diffs["margin"].to_numpy(dtype=float) * scale if "margin" in diffs else \
            np.full(len(diffs), np.nan)
        has_margin = np.isfinite(margin)
        if has_margin.any():  # the equivalence band of each question, behind its interval
            dx.barh(yd[has_margin], 2 * margin[has_margin], left=-margin[has_margin],
                    height=0.6, color=MARGIN, zorder=0)
        for mask, face in ((resolved, STD), (~resolved, "white")):
            if mask.any():
                dx.errorbar(diffs["diff"][mask] * scale, yd[mask], xerr=err[:, mask], fmt="D",
                            ms=5, color=STD, mfc=face, capsize=2, lw=1.2)
        dx.axvline(0, color="k", lw=0.9)
        dx.set_yticks(yd, list(diffs["name"]), fontsize=8)
        dx.set_ylim(len(diffs) - 0.5, -0.5)
        dx.set_xlabel(f"A − B, test {fmt.metric_name(metric)} ({mode}), paired by seed: "
                      "mean and family-adjusted CI (level α/m)")
        dx.grid(axis="x", alpha=0.3)
        handles += [Line2D([], [], color=STD, marker="D", ls="", label="A − B, Holm-significant"),
                    Line2D([], [], color=STD, marker="D", mfc="white", ls="",
                           label="A − B, not significant")]
        if has_margin.any():
            handles.append(Patch(color=MARGIN, label="equivalence margin"))
    legend = fig.legend(handles=handles, loc="upper center", fontsize=8, frameon=False,
                        ncols=min(3, len(handles)))
    fit(fig, grid, legend, "top")
    return fig

