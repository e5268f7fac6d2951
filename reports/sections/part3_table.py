"""The "Part 3 beside us" table of one source as the reader sees it: per arm and metric its
single published run beside our mean in both modes, where that run lies against the prediction
interval of one run of ours, both rankings, how each epoch was picked, and the stated
differences as footnotes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.metrics import MODES
from reports import fmt

NOTES = "abcdefghijklmnopqrstuvwxyz"
POSITION_WORDS = {"consistent": "consistent with one run of ours", "above": "above",
                  "below": "below"}


def text(frame: pd.DataFrame, summary: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The table of one source as the reader sees it, one row per arm and metric; returns the
    footnotes {note: letter} (the stated differences, shared by most arms, are shown once)."""
    notes: dict[str, str] = {}
    rows = []
    frame = _with_both_modes(frame, summary)
    for (_, metric), g in frame.groupby(["arm", "metric"], sort=False):
        r = g.iloc[0]
        if r.note:
            notes.setdefault(r.note, NOTES[len(notes) % len(NOTES)])
        theirs = "; ".join(f"{fmt.num(metric, x.published)} ({x.mode or 'mode not stated'})"
                           for x in g.itertuples())
        against = "; ".join(
            f"{x.mode or 'not stated'} vs our {x.compared_mode} "
            f"{fmt.interval(metric, x.ours_pi_low, x.ours_pi_high)}: "
            + POSITION_WORDS.get(x.position, fmt.DASH) for x in g.itertuples())
        ranked = metric == r.rank_metric
        rows.append({
            "arm": r.label, "framework": r.framework, "published setting": r.setting,
            "metric": fmt.metric_name(metric), "published (test, one run)": theirs,
            "seeds": r.n,  # its own column: arms of one table may have different counts
            **{f"ours {m}": _ours(r, metric, m) for m in MODES},
            "their run against one run of ours (95% prediction interval)": against,
            "rank within framework: theirs / ours": f"{_rank(r.part3_rank)} / "
            f"{_rank(r.our_rank)}" if ranked else fmt.DASH,
            "their epoch / ours selected on": f"{r.selection or 'not stated'} / validation "
            f"{fmt.metric_name(r.select_on)}",
            "stated differences": f"[{notes[r.note]}]" if r.note else fmt.DASH,
        })
    return pd.DataFrame(rows), notes


def _ours(r, metric: str, mode: str) -> str:
    """Our mean ± half-width in one mode."""
    return fmt.pm(metric, r[f"{mode}_mean"], r[f"{mode}_half"])


def _rank(x: float) -> str:
    """A rank as an integer, a dash when the arm is not ranked."""
    return str(int(x)) if fmt.finite(x) else fmt.DASH


def _with_both_modes(frame: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Add our mean and half-width in both modes (std_mean, mc_half, ...) for the text table."""
    s = summary.set_index("arm")
    out = frame.copy()
    for mode in MODES:
        for x in ("mean", "half"):
            out[f"{mode}_{x}"] = [s.loc[a].get(f"{m}_{mode}_{x}", np.nan)
                                  for a, m in zip(out["arm"], out["metric"], strict=True)]
    return out
