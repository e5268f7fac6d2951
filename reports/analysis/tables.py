"""Numeric tables (pandas) of the report: per-run values, the per-task summary, MC minus
standard, and cost. Formatting into strings lives in `reports.fmt` and the sections, so tests
check numbers.

Every interval is a 95% Student-t interval over seeds (one value per run); per-epoch values are
first reduced to one number per run, because epochs of one run are not independent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.metrics import (
    BEST_EPOCH,
    EPOCH_CPU_SECONDS,
    EPOCH_SECONDS,
    EPOCHS_RUN,
    EVAL_CPU_SECONDS,
    EVAL_SECONDS,
    MC,
    MODES,
    STD,
    TEST,
    TRAIN_TOKENS_PER_S,
    VALID,
)
from experiments.metrics import key as metric_key
from reports.analysis.arms import order_key
from reports.metrics import HIGHER_IS_BETTER, task_metrics
from reports.stats import MeanCI, mean_ci, predict_one

COST = (TRAIN_TOKENS_PER_S, EPOCH_SECONDS, EVAL_SECONDS, EPOCH_CPU_SECONDS)
RUN_HOURS = "run_hours"


def wide_history(history: pd.DataFrame) -> pd.DataFrame:
    """(run_id, step) x key table of the per-epoch metrics."""
    if history.empty:
        return pd.DataFrame(columns=["run_id", "step"])
    table = history.pivot_table(index=["run_id", "step"], columns="key", values="value",
                                aggfunc="last")
    return table.reset_index()


def per_run(runs: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """One row per usable run: final test metrics, best epoch, cost (median over epochs, the
    first epoch left out when there are more, since it includes warm-up and graph tracing) and
    the MC - standard difference (test, and the mean over validation epochs)."""
    wide = wide_history(history)
    by_run = dict(tuple(wide.groupby("run_id"))) if len(wide) else {}
    rows = []
    for r in runs.itertuples():
        h = by_run.get(r.run_id, pd.DataFrame(columns=["step"]))
        steady = h[h["step"] > 1] if (h["step"] > 1).any() else h
        row = {"run_id": r.run_id, "arm": r.arm, "label": r.label, "task": r.task,
               "framework": r.framework, "variant": r.variant, "seed": int(r.seed),
               "preset": getattr(r, "preset", ""),
               BEST_EPOCH: r.metrics.get(BEST_EPOCH, np.nan),
               EPOCHS_RUN: r.metrics.get(EPOCHS_RUN, np.nan)}
        for key in COST:
            row[key] = float(steady[key].median()) if key in steady else np.nan
        row[RUN_HOURS] = run_hours(h)
        for m in task_metrics(r.task, r.metrics):
            for mode in MODES:
                row[metric_key(TEST, m, mode)] = r.metrics.get(metric_key(TEST, m, mode), np.nan)
            row[f"test_{m}_diff"] = row[metric_key(TEST, m, MC)] - row[metric_key(TEST, m, STD)]
            std, mc = metric_key(VALID, m, STD), metric_key(VALID, m, MC)
            if std in h and mc in h:
                d = (h[mc] - h[std]).to_numpy(dtype=float)
                row[f"valid_{m}_diff"] = float(np.nanmean(d)) if len(d) else np.nan
                better, worse = _shares(d, m)
                row[f"valid_{m}_mc_better"], row[f"valid_{m}_mc_worse"] = better, worse
        rows.append(row)
    return pd.DataFrame(rows)


def run_hours(h: pd.DataFrame) -> float:
    """A run's logged cost in hours: its CPU seconds of training and evaluation summed over
    epochs where it logged them (runs since `epoch_cpu_seconds`), else its wall seconds (the
    same for a one-thread job on an idle core); NaN without either."""
    for train, evaluation in ((EPOCH_CPU_SECONDS, EVAL_CPU_SECONDS),
                              (EPOCH_SECONDS, EVAL_SECONDS)):
        if train in h and h[train].notna().any():
            total = h[train].sum() + (h[evaluation].sum() if evaluation in h else 0.0)
            return float(total) / 3600
    return np.nan


def _shares(d: np.ndarray, metric: str) -> tuple[float, float]:
    """Fractions of epochs where MC was better and worse than standard (the rest are ties)."""
    d = d[np.isfinite(d)]
    if not len(d):
        return np.nan, np.nan
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    return float((sign * d > 0).mean()), float((sign * d < 0).mean())


def _ci_columns(prefix: str, ci: MeanCI) -> dict[str, float]:
    return {f"{prefix}_mean": ci.mean, f"{prefix}_half": ci.half, f"{prefix}_low": ci.low,
            f"{prefix}_high": ci.high}


def arms_of(runs: pd.DataFrame, variant_order: list[str]) -> list[tuple[str, str, str]]:
    """(arm, label, framework) in report order: variant order, label, framework."""
    seen = runs.drop_duplicates("arm")[["arm", "label", "framework"]]
    keyed = sorted(seen.itertuples(index=False),
                   key=lambda a: (*order_key(a.label, variant_order), a.framework))
    return [(a.arm, a.label, a.framework) for a in keyed]


def summary(per: pd.DataFrame, task: str, variant_order: list[str]) -> pd.DataFrame:
    """Per arm of `task`: seeds, mean and CI of every test metric (standard and MC), the
    prediction interval of one new run (`_pi_low`, `_pi_high`), best epoch, epochs run (early
    stopping), tokens/s and epoch time."""
    rows = []
    mine = per[per["task"] == task]
    metrics = task_metrics(task, [c for c in mine.columns if c.startswith(f"{TEST}_")])
    for arm, label, framework in arms_of(mine, variant_order):
        g = mine[mine["arm"] == arm]
        row = {"arm": arm, "label": label, "framework": framework, "n": len(g),
               "variant": g["variant"].iloc[0], "preset": g["preset"].iloc[0],
               "seeds": ",".join(str(s) for s in sorted(g["seed"]))}
        for m in metrics:
            for mode in MODES:
                values = g[metric_key(TEST, m, mode)]
                row.update(_ci_columns(f"{m}_{mode}", mean_ci(values)))
                row[f"{m}_{mode}_pi_low"], row[f"{m}_{mode}_pi_high"] = predict_one(values)
        for key in (BEST_EPOCH, EPOCHS_RUN):
            row.update({f"{key}_mean": g[key].mean(), f"{key}_min": g[key].min(),
                        f"{key}_max": g[key].max()})
        row.update(_ci_columns("tokens_per_s", mean_ci(g[TRAIN_TOKENS_PER_S])))
        row.update(_ci_columns(EPOCH_SECONDS, mean_ci(g[EPOCH_SECONDS])))
        rows.append(row)
    return pd.DataFrame(rows)


def mc_minus_std(per: pd.DataFrame, task: str, variant_order: list[str]) -> pd.DataFrame:
    """Per arm and metric: MC - standard on the test set at the best epoch, and averaged over
    validation epochs; CI over seeds; share of validation epochs where MC was better."""
    rows = []
    mine = per[per["task"] == task]
    metrics = task_metrics(task, [c for c in mine.columns if c.startswith(f"{TEST}_")])
    for arm, label, framework in arms_of(mine, variant_order):
        g = mine[mine["arm"] == arm]
        for m in metrics:
            row = {"arm": arm, "label": label, "framework": framework, "metric": m,
                   "n": len(g)}
            row.update(_ci_columns("test_diff", mean_ci(g[f"test_{m}_diff"])))
            valid = g.get(f"valid_{m}_diff", pd.Series(dtype=float))
            row.update(_ci_columns("valid_diff", mean_ci(valid)))
            for word in ("better", "worse"):
                share = g.get(f"valid_{m}_mc_{word}", pd.Series(dtype=float))
                row[f"mc_{word}_share"] = float(share.mean()) if len(share) else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def baseline_arm(arm_setting: dict[str, str], candidates: list[tuple[str, dict[str, str]]]
                 ) -> str | None:
    """The `none` arm whose non-dropout setting is closest (fewest differing keys)."""
    def distance(other: dict[str, str]) -> int:
        keys = {k for k in (*arm_setting, *other) if not k.startswith("dropout.")}
        return sum(arm_setting.get(k) != other.get(k) for k in keys)

    if not candidates:
        return None
    return min(candidates, key=lambda c: distance(c[1]))[0]


def cost(per: pd.DataFrame, runs: pd.DataFrame, task: str, variant_order: list[str]
         ) -> pd.DataFrame:
    """Per arm: training tokens/s, epoch and evaluation time (CI over seeds of the per-run
    medians) and their ratio to the fused baseline: variant `none` of the same framework."""
    mine = per[per["task"] == task]
    settings = runs.drop_duplicates("arm").set_index("arm")["setting"].to_dict()
    rows = []
    for arm, label, framework in arms_of(mine, variant_order):
        g = mine[mine["arm"] == arm]
        nones = [(a, settings[a]) for a in mine.loc[(mine["variant"] == "none")
                                                    & (mine["framework"] == framework), "arm"]
                 .unique()]
        base = baseline_arm(settings[arm], nones)
        b = mine[mine["arm"] == base] if base else mine.iloc[:0]
        row = {"arm": arm, "label": label, "framework": framework, "n": len(g),
               "baseline": base}
        for key in COST:
            row.update(_ci_columns(key, mean_ci(g[key])))
            base_mean = b[key].mean() if len(b) else np.nan
            row[f"{key}_rel"] = row[f"{key}_mean"] / base_mean if base_mean else np.nan
        rows.append(row)
    return pd.DataFrame(rows)
