"""What a reader of the figures can read: nothing clipped by the figure's edge, no legend over a
title, a bar or a curve's axis (issue 16 item 12). Checked through matplotlib's bounding boxes
of the drawn artists, never through pixels; inputs are long labels and large tick values, the
cases that broke the fixed margins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox

from reports.figures.cost import cost_chart
from reports.figures.curves import learning_curves
from reports.figures.forest import forest_plot
from reports.figures.mc import mc_histograms

LONG = ["weightdrop_variational [part3_imdb_torch_weightdrop_variational]", "none",
        "keras_impl0 [part3_imdb_keras_variational]", "naive [granularity=batch, size=small]"]


def _renderer(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _inside(box: Bbox, fig, renderer) -> bool:
    edge = fig.bbox
    return box.x0 >= edge.x0 - 0.5 and box.y0 >= edge.y0 - 0.5 and \
        box.x1 <= edge.x1 + 0.5 and box.y1 <= edge.y1 + 0.5


def _apart(a: Bbox, b: Bbox) -> bool:
    """No shared area (touching edges allowed)."""
    return a.x1 <= b.x0 + 0.5 or b.x1 <= a.x0 + 0.5 or a.y1 <= b.y0 + 0.5 or b.y1 <= a.y0 + 0.5


def _ticklabels(axis, renderer) -> list[Bbox]:
    return [t.get_window_extent(renderer) for t in axis.get_ticklabels()
            if t.get_visible() and t.get_text()]


def _history(metric: str, scale: float, mc_every_epoch: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, runs = [], []
    rng = np.random.default_rng(0)
    for i, label in enumerate(LONG):
        for framework in ("torch", "keras"):
            for seed in range(3):
                run = f"{label}-{framework}-{seed}"
                runs.append({"run_id": run, "label": label, "framework": framework})
                for step in range(1, 9):
                    value = scale * (1 + i / 10 + rng.normal(0, 0.01)) / step ** 0.2
                    mc = value * 1.01 if mc_every_epoch or step == 3 else np.nan
                    rows.append({"run_id": run, "step": step, "train_loss": 5.0 / step,
                                 f"valid_{metric}_std": value, f"valid_{metric}_mc": mc})
    return pd.DataFrame(rows), pd.DataFrame(runs)


@pytest.mark.parametrize(("metric", "scale"), [("perplexity", 12345.0), ("accuracy", 0.85)])
def test_curves_y_labels_are_not_clipped_or_covered_by_tick_labels(metric, scale):
    wide, runs = _history(metric, scale, True)
    fig = learning_curves(wide, runs, LONG, metric, ["keras", "torch"])
    renderer = _renderer(fig)
    for ax in fig.axes:
        label = ax.yaxis.label.get_window_extent(renderer)
        assert _inside(label, fig, renderer), ax.get_ylabel()
        for tick in _ticklabels(ax.yaxis, renderer):
            assert _apart(label, tick), (ax.get_ylabel(), tick)
        for other in fig.axes:  # a right-hand panel's label stays off its neighbour
            if other is not ax:
                assert _apart(label, other.get_window_extent(renderer))
    legend = fig.legends[0].get_window_extent(renderer)
    assert _inside(legend, fig, renderer)
    assert all(_apart(legend, ax.get_tightbbox(renderer)) for ax in fig.axes)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == LONG


def test_curves_with_mc_only_at_some_epochs_plot_standard_lines_and_mc_dots():
    wide, runs = _history("accuracy", 0.85, False)
    fig = learning_curves(wide, runs, LONG, "accuracy", ["keras", "torch"])
    lower = [ax for ax in fig.axes if "validation" in ax.get_ylabel()]
    assert len(lower) == 2
    for ax in lower:
        assert "standard" in ax.get_ylabel() and "MC" in ax.get_ylabel()
        dots = [ln for ln in ax.lines if ln.get_marker() == "o"]
        # one MC value per run (3 seeds x 4 arms of this framework), all at epoch 3
        assert sum(len(ln.get_xdata()) for ln in dots) == 12
        assert {x for ln in dots for x in ln.get_xdata()} == {3}
        curves = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
        assert len(curves) == 4 and all(len(ln.get_xdata()) == 8 for ln in curves)


def test_mc_histogram_legend_stays_clear_of_the_title_and_panels():
    wide, runs = _history("accuracy", 0.85, True)
    for labels in (LONG, LONG[:1]):
        fig = mc_histograms(wide, runs, labels, "accuracy", ["keras", "torch"])
        renderer = _renderer(fig)
        title = fig._suptitle.get_window_extent(renderer)
        legend = fig.legends[0].get_window_extent(renderer)
        assert _inside(title, fig, renderer) and _inside(legend, fig, renderer)
        assert _apart(title, legend)
        for ax in fig.axes:
            if ax.get_visible():
                assert _apart(legend, ax.get_tightbbox(renderer)), ax.get_title()
                assert _apart(title, ax.get_tightbbox(renderer)), ax.get_title()


def test_cost_legend_covers_no_bar_and_labels_fit():
    table = pd.DataFrame({"label": LONG * 2, "framework": ["torch"] * 4 + ["keras"] * 4,
                          "train_tokens_per_s_rel": [1.0, 0.2, 1.4, 0.9, 1.0, 0.5, 1.1, 1.6]})
    fig = cost_chart(table)
    renderer = _renderer(fig)
    ax = fig.axes[0]
    legend = (fig.legends[0] if fig.legends else ax.get_legend()).get_window_extent(renderer)
    bars = [p.get_window_extent(renderer) for p in ax.patches]
    assert len(bars) == 8 and all(_apart(legend, b) for b in bars)
    assert _inside(legend, fig, renderer)
    for box in [*_ticklabels(ax.yaxis, renderer), ax.xaxis.label.get_window_extent(renderer)]:
        assert _inside(box, fig, renderer)


def test_forest_plot_labels_fit_and_legend_is_clear():
    arms = pd.DataFrame({"name": [f"{x} (torch)" for x in LONG],
                         "std_mean": [0.84, 0.83, 0.85, 0.845],
                         "std_low": [0.83, 0.82, np.nan, 0.84],
                         "std_high": [0.85, 0.84, np.nan, 0.85],
                         "mc_mean": [0.841, 0.83, 0.851, 0.846],
                         "mc_low": [0.83, 0.82, 0.84, 0.84], "mc_high": [0.85, 0.84, 0.86, 0.85],
                         "published": [0.8453, np.nan, 0.8462, np.nan]})
    diffs = pd.DataFrame({"name": ["part3_imdb_torch_weightdrop_variational vs "
                                   "part3_imdb_torch_weightdrop", "torch/none vs keras/none"],
                          "diff": [0.004, -0.001], "low": [0.001, -0.004],
                          "high": [0.007, 0.002], "resolved": [True, False]})
    fig = forest_plot(arms, diffs, "accuracy", "std")
    renderer = _renderer(fig)
    legend = fig.legends[0].get_window_extent(renderer)
    assert _inside(legend, fig, renderer)
    for ax in fig.axes:
        assert _apart(legend, ax.get_tightbbox(renderer))
        for box in _ticklabels(ax.yaxis, renderer):
            assert _inside(box, fig, renderer)
        assert _inside(ax.xaxis.label.get_window_extent(renderer), fig, renderer)
    top, bottom = fig.axes
    assert _apart(top.get_tightbbox(renderer), bottom.get_tightbbox(renderer))
    published = [ln for ln in top.lines if ln.get_marker() == "x"]
    assert published and np.nanmax(published[0].get_xdata()) == pytest.approx(84.62)
