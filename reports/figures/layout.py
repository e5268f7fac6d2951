"""Figure margins from measured text: nothing clipped, nothing overlapping.

Fixed margins clip long tick labels (a y-label pushed off the figure) and legends placed by
guesswork cover titles or bars. matplotlib's constrained layout solves this but doubles the
drawing time of the report's figures (several passes per save), so `fit` measures once: the
extent of every axes' decorations (tick labels, axis labels, titles), of the suptitle and of the
legend, and then sizes the figure around axes of the size the caller asked for, the legend in
its own margin. Tests check the result through the artists' bounding boxes.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text

PAD = 0.08  # inches between neighbouring pieces and at the figure's edge


def fit(fig: Figure, grid: np.ndarray, legend: Legend | None = None, side: str = "right",
        title: Text | None = None) -> None:
    """Resize `fig` and set its subplot parameters so that the axes of `grid` (rows x columns,
    as `Figure.subplots(squeeze=False)` returns; hidden axes ignored) keep their current size in
    inches with room for their decorations, `title` (a suptitle) sits at the top and `legend`
    (a figure legend) in its own margin on `side` ("right" or "top", below the title)."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    dpi = fig.dpi
    nrows, ncols = grid.shape
    over = np.zeros((nrows, ncols, 4))  # left, right, bottom, top overflow in inches
    widths, heights = np.zeros(ncols), np.zeros(nrows)
    for (i, j), ax in np.ndenumerate(grid):
        if not ax.get_visible():
            continue
        box, tight = ax.get_window_extent(renderer), ax.get_tightbbox(renderer)
        over[i, j] = [max(0.0, box.x0 - tight.x0), max(0.0, tight.x1 - box.x1),
                      max(0.0, box.y0 - tight.y0), max(0.0, tight.y1 - box.y1)]
        over[i, j] /= dpi
        widths[j], heights[i] = max(widths[j], box.width / dpi), max(heights[i], box.height / dpi)
    left = over[:, 0, 0].max() + PAD
    right = over[:, -1, 1].max() + PAD
    bottom = over[-1, :, 2].max() + PAD
    top = over[0, :, 3].max() + PAD
    wgap = max((over[:, j, 1].max() + over[:, j + 1, 0].max() + PAD for j in range(ncols - 1)),
               default=0.0)
    hgap = max((over[i, :, 2].max() + over[i + 1, :, 3].max() + PAD for i in range(nrows - 1)),
               default=0.0)
    title_w = title.get_window_extent(renderer).width / dpi + 2 * PAD if title else 0.0
    title_h = title.get_window_extent(renderer).height / dpi + PAD if title else 0.0
    legend_w = legend_h = 0.0
    if legend is not None:
        extent = legend.get_window_extent(renderer)
        legend_w, legend_h = extent.width / dpi + PAD, extent.height / dpi + PAD
    area_w = widths.sum() + wgap * (ncols - 1)
    area_h = heights.sum() + hgap * (nrows - 1)
    margin_right = right + (legend_w if side == "right" else 0.0)
    margin_top = top + title_h + (legend_h if side == "top" else 0.0)
    width = max(left + area_w + margin_right, (legend_w if side == "top" else 0.0) + 2 * PAD,
                title_w)
    height = bottom + area_h + margin_top
    fig.set_size_inches(width, height)
    fig.subplots_adjust(left=left / width, right=(left + area_w) / width, bottom=bottom / height,
                        top=(bottom + area_h) / height,
                        wspace=wgap / widths.mean() if ncols > 1 else 0.2,
                        hspace=hgap / heights.mean() if nrows > 1 else 0.2)
    if title is not None:
        title.set_position((0.5, 1 - PAD / height))
        title.set_verticalalignment("top")
    if legend is not None:
        if side == "right":
            legend.set_bbox_to_anchor(((left + area_w + right) / width, 0.5), fig.transFigure)
            legend.set_loc("center left")
        else:
            middle = min(max((left + area_w / 2) / width, legend_w / 2 / width),
                         1 - legend_w / 2 / width)  # over the axes, inside the figure
            legend.set_bbox_to_anchor((middle, 1 - (PAD + title_h) / height), fig.transFigure)
            legend.set_loc("upper center")
