"""Figures drawn in forked workers while the main process builds the tables: drawing is most
of the report's CPU time and the figures are independent. A figure is named by its kind, so a
worker needs only this module's table of makers and the figure's data."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from reports.figures.cost import cost_chart
from reports.figures.curves import learning_curves
from reports.figures.forest import forest_plot
from reports.figures.mc import mc_histograms
from reports.figures.save import Saved, save

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


def pool(workers: int | None = None) -> ProcessPoolExecutor | _Inline:
    """Render figures in forked workers while the main process builds the tables: drawing is
    most of the report's CPU time and the figures are independent. `REPORT_WORKERS=1` (or a
    system without fork) renders inline."""
    workers = workers or int(os.environ.get("REPORT_WORKERS", "0")) or min(
        2, os.cpu_count() or 1)
    if workers < 2 or "fork" not in mp.get_all_start_methods():
        return _Inline()
    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"))
