"""The summary table of one task as the reader sees it: per arm every test metric in both
evaluation modes (best value in bold), best epoch, epochs run, speed and flagged runs."""

from __future__ import annotations

import pandas as pd

from experiments import tracking as T
from experiments.metrics import BEST_EPOCH, EPOCH_SECONDS, EPOCHS_RUN, MODES, STD, TEST, mode_key
from experiments.metrics import key as metric_key
from reports import fmt
from reports.metrics import HIGHER_IS_BETTER, task_metrics


def caption(task: str, runs: pd.DataFrame) -> str:
    """What the numbers are: selection, intervals, the epoch budget."""
    mine = runs[runs["task"] == task]
    epochs = sorted({p.get("train.epochs") for p in mine["params"]} - {None}, key=str)
    return (f"Test metrics at the epoch with the best validation "
            f"{' or '.join(selection_metrics(mine))} (standard evaluation), mean ± 95% CI over "
            f"seeds; at most {', '.join(epochs)} epochs per run; best value of each column in "
            "bold.")


def selection_metrics(runs: pd.DataFrame) -> list[str]:
    """The validation metrics that picked the runs' best epochs: tag `select_on`, or, for runs
    logged before it existed, the task's first metric."""
    found = set()
    for task, tags, metrics in zip(runs["task"], runs["tags"], runs["metrics"], strict=True):
        default = task_metrics(task, metrics)
        found.add(tags.get(T.SELECT_ON) or (default[0] if default else "?"))
    return sorted(fmt.metric_name(m) for m in found)


def bold_best(frame: pd.DataFrame, col: str, metric: str) -> set[int]:
    """The rows holding a column's best mean (none when fewer than two distinct values)."""
    values = frame[f"{col}_mean"]
    if values.notna().sum() < 2 or values.nunique() < 2:
        return set()
    best = values.max() if HIGHER_IS_BETTER.get(metric, True) else values.min()
    return set(frame.index[values == best])


def text(s: pd.DataFrame, task: str, flagged: pd.DataFrame) -> pd.DataFrame:
    """The summary `s` of `task` as text, with each arm's count of flagged runs."""
    present = summary_metrics(s)
    metrics = [m for m in task_metrics(task, [metric_key(TEST, m, STD) for m in present])
               if m in present]
    out = pd.DataFrame({"variant": s["label"], "framework": s["framework"],
                        "seeds": s["n"].astype(str)})
    for m in metrics:
        for mode in MODES:
            col = mode_key(m, mode)
            best = bold_best(s, col, m)
            out[f"{fmt.metric_name(m)} {mode}"] = [
                (f"**{t}**" if i in best else t) for i, t in
                ((i, fmt.pm(m, s.at[i, f"{col}_mean"], s.at[i, f"{col}_half"])) for i in s.index)]
    out["best epoch"] = [_spread(r, BEST_EPOCH) for r in s.itertuples()]
    if s[f"{EPOCHS_RUN}_mean"].notna().any():
        out["epochs run"] = [_spread(r, EPOCHS_RUN) for r in s.itertuples()]
    out["tokens/s"] = [fmt.count(x) for x in s["tokens_per_s_mean"]]
    out["epoch s"] = [fmt.seconds(x) for x in s[f"{EPOCH_SECONDS}_mean"]]
    mine = flagged[flagged["task"] == task] if len(flagged) else flagged
    presets = [(t or {}).get(T.PRESET, "") if isinstance(t, dict) else ""
               for t in mine.get("tags", [])]
    out["flagged runs"] = [str(int(((mine["framework"] == r.framework)
                                    & (mine["variant"] == r.variant)
                                    & (pd.Series(presets, index=mine.index, dtype=object)
                                       == r.preset)).sum()))
                           if len(mine) else "0" for r in s.itertuples()]
    return out


def _spread(r, key: str) -> str:
    """Mean over seeds, with the range when the seeds differ: `4.2 (3–6)`."""
    mean, low, high = (getattr(r, f"{key}_{x}") for x in ("mean", "min", "max"))
    if not fmt.finite(mean):
        return fmt.DASH
    return f"{mean:.1f}" + (f" ({low:.0f}–{high:.0f})" if low != high else "")


def summary_metrics(summary: pd.DataFrame) -> set[str]:
    """The metrics a summary holds (those with a standard-evaluation mean)."""
    return {c.removesuffix("_std_mean") for c in summary.columns if c.endswith("_std_mean")}
