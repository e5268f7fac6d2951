"""Matplotlib figures (Agg, no pyplot state): Part 3's learning curves and MC - standard
histograms, with seed bands, the cost chart and the forest plot (`reports.forest`). Each is
saved as PNG and SVG; margins come from measured text (`reports.layout.fit`)."""

from __future__ import annotations

import io
import multiprocessing as mp
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: smaller, searchable, 2x faster
matplotlib.rcParams["svg.hashsalt"] = "reports"  # stable element ids: same data, same file
import matplotlib.patches  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from experiments.metrics import MC, STD, TRAIN_LOSS, TRAIN_TOKENS_PER_S, VALID  # noqa: E402
from experiments.metrics import key as metric_key  # noqa: E402
from reports import fmt  # noqa: E402
from reports.forest import forest_plot  # noqa: E402
from reports.layout import fit  # noqa: E402
from reports.load import HIGHER_IS_BETTER  # noqa: E402

FRAMEWORK_COLORS = {"torch": "#d62728", "keras": "#1f77b4"}


@dataclass
class Saved:
    name: str
    title: str
    png: Path
    svg: Path
    png_bytes: bytes


def save(fig: Figure, out: Path, name: str, title: str) -> Saved:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    png, svg = out / f"{name}.png", out / f"{name}.svg"
    png.write_bytes(buf.getvalue())
    fig.savefig(svg, format="svg", metadata={"Date": None})  # same data, same bytes
    return Saved(name, title, png, svg, buf.getvalue())


def colors(labels: list[str]) -> dict[str, tuple]:
    """One stable colour per arm label, the same in every panel and figure."""
    cmap = matplotlib.colormaps["tab20" if len(labels) > 10 else "tab10"]
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


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


MAKERS = {"curves": learning_curves, "mc": mc_histograms, "cost": cost_chart,
          "forest": forest_plot}


def render(kind: str, out: Path, name: str, title: str, *args) -> Saved:
    """Make and save one figure; module-level so a worker process can run it."""
    return save(MAKERS[kind](*args), out, name, title)


class _Inline:
    """The executor interface, run in this process (one core, or no fork on this system)."""

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc) -> None:
        return None


def pool(workers: int | None = None):
    """Render figures in forked workers while the main process builds the tables: drawing is
    most of the report's CPU time and the figures are independent. `REPORT_WORKERS=1` (or a
    system without fork) renders inline."""
    workers = workers or int(os.environ.get("REPORT_WORKERS", "0")) or min(
        2, os.cpu_count() or 1)
    if workers < 2 or "fork" not in mp.get_all_start_methods():
        return _Inline()
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"))
