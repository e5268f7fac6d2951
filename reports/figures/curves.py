"""Learning curves: training loss and the validation metric per epoch, per framework, one line
per arm with its seed band."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from experiments.metrics import MC, STD, TRAIN_LOSS, VALID
from experiments.metrics import key as metric_key
from reports import fmt
from reports.figures.layout import fit
from reports.figures.style import colors


def learning_curves(wide: pd.DataFrame, runs: pd.DataFrame, labels: list[str], metric: str,
                    frameworks: list[str]) -> Figure:
    """Rows: training loss and validation metric per epoch; one column per framework; one line
    per arm (mean over seeds) with a band from the lowest to the highest seed. The validation
    row shows MC where every epoch has it; runs that MC-validated only some epochs
    (`train.mc_every`) show the standard metric as lines and their MC values as dots."""
    palette = colors(labels)
    std, mc = metric_key(VALID, metric, STD), metric_key(VALID, metric, MC)
    merged = wide.merge(runs[["run_id", "label", "framework"]], on="run_id")
    dense = mc in merged and (std not in merged or merged[mc].notna().sum()
                              >= merged[std].notna().sum())
    valid = mc if dense else std
    keys = [(TRAIN_LOSS, "training loss"),
            (valid, f"validation {fmt.metric_name(metric)}, {'MC' if dense else 'standard'}")]
    scale = fmt.SCALE.get(metric, 1.0)
    fig = Figure(figsize=(4.6 * len(frameworks), 6.4))
    axes = fig.subplots(2, len(frameworks), squeeze=False, sharex=True)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0, hspace=0)
    present = [k for k, _ in keys if k in merged]
    stats = merged.groupby(["framework", "label", "step"])[present].agg(["mean", "min", "max"])
    for col, framework in enumerate(frameworks):
        for row, (key, ylabel) in enumerate(keys):
            ax = axes[row][col]
            factor = scale if row == 1 else 1.0
            for label in labels:
                if key not in present or (framework, label) not in stats.index.droplevel(2):
                    continue
                s = stats.loc[(framework, label), key].dropna()
                if s.empty:
                    continue
                ax.plot(s.index, s["mean"] * factor, color=palette[label], lw=1.5, label=label)
                ax.fill_between(s.index, s["min"] * factor, s["max"] * factor,
                                color=palette[label], alpha=0.15, lw=0)
                if row == 1 and not dense and mc in merged:
                    dots = merged[(merged["framework"] == framework)
                                  & (merged["label"] == label)].dropna(subset=[mc])
                    ax.plot(dots["step"], dots[mc] * factor, "o", ms=3.5, mfc="none",
                            color=palette[label])
            ax.set_ylabel(ylabel + ("\n(dots: MC at the evaluated epochs)"
                                    if row == 1 and not dense else ""))
            ax.grid(alpha=0.3)
            low, high = ax.get_ylim()
            if metric == "perplexity" and row == 1 and low > 0 and high / low > 3:
                ax.set_yscale("log")  # early-epoch perplexities would flatten the rest
            if row == 0:
                ax.set_title(framework)
            else:
                ax.set_xlabel("epoch")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, names = [], []
    for ax in np.ravel(axes):
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    legend = fig.legend(handles, names, loc="center left", fontsize=8, frameon=False)
    fit(fig, axes, legend, "right")
    return fig
