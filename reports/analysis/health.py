"""Which runs are results, and what is wrong with the others.

A run enters the tables only if it finished, carries `completed=true`, and has every final metric
and every epoch of its history (up to `epochs_run` after an early stop; MC validation only where
`train.mc_every` asked for it, and always at the selected epoch). Everything else is listed in
the report's "Run health" section with the reason, never silently dropped or averaged: failed,
killed, unfinished, superseded, incomplete, and older duplicates of a configuration that was
rerun with `tracking.force`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from experiments import tracking as T
from experiments.metrics import (
    BEST_EPOCH,
    EPOCH_SECONDS,
    EPOCHS_RUN,
    MC,
    MODES,
    TEST,
    TRAIN_LOSS,
    TRAIN_TOKENS_PER_S,
    VALID,
)
from experiments.metrics import key as metric_key
from reports.metrics import task_metrics
from reports.store.load import StoreData
from reports.store.sweeps import sweep_groups

REQUIRED_HISTORY = (TRAIN_LOSS, EPOCH_SECONDS, TRAIN_TOKENS_PER_S)


@dataclass
class Health:
    """`usable`: the runs behind every table. `flagged`: the others, with `category` and
    `problem`. `sweeps`: one row per sweep parent run with a verdict."""

    usable: pd.DataFrame
    flagged: pd.DataFrame
    sweeps: pd.DataFrame


def check(data: StoreData) -> Health:
    runs = data.runs
    steps = _steps(data.history)
    problems: dict[str, tuple[str, str]] = {}
    for row in runs.itertuples():
        found = _problem(row, steps.get(row.run_id, {}))
        if found:
            problems[row.run_id] = found
    ok = runs[~runs["run_id"].isin(problems)]
    for run_id, newer in _older_duplicates(ok).items():
        problems[run_id] = ("duplicate", f"an older completed run of config {newer[1]}; the "
                            f"newer run {newer[0][:8]} is used")
    flagged = runs[runs["run_id"].isin(problems)].copy()
    flagged["category"] = [problems[r][0] for r in flagged["run_id"]]
    flagged["problem"] = [problems[r][1] for r in flagged["run_id"]]
    usable = runs[~runs["run_id"].isin(problems)].reset_index(drop=True)
    return Health(usable, flagged.reset_index(drop=True), sweep_health(data))


def _steps(history: pd.DataFrame) -> dict[str, dict[str, set[int]]]:
    out: dict[str, dict[str, set[int]]] = {}
    for (run_id, key), steps in history.groupby(["run_id", "key"])["step"]:
        out.setdefault(run_id, {})[key] = set(steps.astype(int))
    return out


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _problem(row, steps: dict[str, set[int]]) -> tuple[str, str] | None:
    redone = f"; redone by run {_text(row.superseded_by)[:8]}" if _text(row.superseded_by) \
        else ""
    reason = f": {_text(row.failure_reason)}" if _text(row.failure_reason) else ""
    if row.status == "FAILED":
        return "failed", f"status FAILED{reason}{redone}"
    if row.status == "KILLED":
        return "killed", f"status KILLED{reason}{redone}"
    if row.status != "FINISHED":
        return "unfinished", f"status {row.status} (still running, or killed without cleanup)" \
            f"{reason}{redone}"
    if not row.completed:
        return "unfinished", f"FINISHED but not tagged completed=true{reason}{redone}"
    if not row.task or not row.variant or not row.framework or row.seed is pd.NA:
        return "missing tags", "no task, framework, variant or seed tag"
    missing = missing_metrics(row, steps)
    if missing:
        return "missing metrics", missing
    return None


def missing_metrics(row, steps: dict[str, set[int]]) -> str:
    """Describe what a completed run lacks ('' when nothing): final metrics, and the history
    epochs the run should have logged (`expected_steps`) of every per-epoch key."""
    metrics = task_metrics(row.task, row.metrics)
    if not metrics:
        return "no test_<metric>_std|mc metric logged"
    lacks = [k for k in (BEST_EPOCH, *(metric_key(TEST, m, s) for m in metrics for s in MODES))
             if not _finite(row.metrics.get(k))]
    epochs = _epochs_run(row, steps)
    every = set(range(1, epochs + 1))
    mc = _mc_steps(row, epochs)
    for name in (*REQUIRED_HISTORY, *(metric_key(VALID, m, s) for m in metrics for s in MODES)):
        gap = sorted((mc if name.endswith(f"_{MC}") else every) - steps.get(name, set()))
        if gap:
            lacks.append(f"{name} epochs {_ranges(gap)}")
    return ("missing " + ", ".join(lacks)) if lacks else ""


def _epochs_run(row, steps: dict[str, set[int]]) -> int:
    """Epochs the run trained: metric `epochs_run` (fewer than train.epochs after an early
    stop), else param train.epochs (runs logged before early stopping existed), else the
    history's last step."""
    logged = row.metrics.get(EPOCHS_RUN)
    if _finite(logged):
        return int(logged)
    try:
        epochs = int(row.params.get("train.epochs", "0"))
    except ValueError:
        epochs = 0
    return epochs if epochs >= 1 else max((max(s) for s in steps.values() if s), default=0)


def _mc_steps(row, epochs: int) -> set[int]:
    """Epochs with an MC validation: every `train.mc_every`-th epoch (param absent: every epoch,
    as before the setting existed) and always the selected one; with mc_every = 0 only the
    selected epoch (`best_epoch`), which the run logs after training."""
    try:
        every = int(row.params.get("train.mc_every", "1"))
    except ValueError:
        every = 1
    steps = set(range(every, epochs + 1, every)) if every > 0 else set()
    best = row.metrics.get(BEST_EPOCH)
    if _finite(best) and 1 <= int(best) <= epochs:
        steps.add(int(best))
    return steps


def _finite(value) -> bool:
    return value is not None and math.isfinite(float(value))


def _ranges(values: list[int]) -> str:
    parts, start = [], values[0]
    for prev, cur in zip(values, [*values[1:], None], strict=True):
        if cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ",".join(parts)


def _older_duplicates(runs: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Completed runs sharing a config hash (a forced rerun): all but the newest."""
    out = {}
    has_hash = runs[runs[T.CONFIG_HASH].notna()]
    for config, group in has_hash.groupby(T.CONFIG_HASH):
        if len(group) > 1:
            group = group.sort_values("start_time")
            newest = group["run_id"].iloc[-1]
            for run_id in group["run_id"].iloc[:-1]:
                out[run_id] = (newest, config)
    return out


def sweep_health(data: StoreData) -> pd.DataFrame:
    """One row per sweep parent, newest first: what its closing summary says and what its runs
    show.

    A sweep interrupted and launched again has a parent per launch (`sweeps.sweep_groups`); the
    rerun skips the jobs earlier launches completed and counts them as skipped, so only its
    newest parent judges the sweep. An earlier parent is "superseded" (its missing jobs are the
    rerun's, not missing), whether the rerun closed it (tag superseded_by) or it was closed
    before, e.g. by Ctrl-C."""
    rows = []
    runs = data.runs
    parents = data.parents  # newest first, as MLflow lists them
    if "start_time" in parents:
        parents = parents.sort_values("start_time", ascending=False, kind="stable")
    groups = sweep_groups(parents)
    for i, p in enumerate(parents.itertuples()):
        children = runs[(runs["parent_run_id"] == p.run_id)
                        | ((runs[T.SWEEP_ID] == p.sweep_id) & runs[T.SWEEP_ID].notna()
                           & (runs["experiment"] == p.experiment))]
        t = p.tags
        counts = {s.lower(): _int(t.get(T.sweep_count_tag(s))) for s in T.JOB_STATUSES}
        jobs = _int(t.get(T.SWEEP_JOBS))
        done = children[T.COMPLETED] & (children["status"] == "FINISHED")
        issues = []
        if p.status == "RUNNING":
            issues.append("never closed (killed, or still running)")
        elif p.status != "FINISHED":
            issues.append(f"parent status {p.status}")
        if counts["failed"]:
            issues.append(f"{counts['failed']} job(s) failed")
        reported = sum(v or 0 for v in counts.values())
        if jobs and p.status != "RUNNING" and reported < jobs:
            issues.append(f"only {reported} of {jobs} jobs reported back")
        if (~done).sum():
            issues.append(f"{int((~done).sum())} run(s) not completed")
        verdict = "incomplete: " + "; ".join(issues) if issues else "complete"
        rerun = _rerun(parents, groups, i)
        if t.get(T.SUPERSEDED_BY):  # a killed sweep whose rerun carries on under a new parent
            verdict = f"superseded by the rerun's parent {str(t[T.SUPERSEDED_BY])[:8]}"
        elif issues and rerun:  # closed before it was relaunched (Ctrl-C, an error)
            verdict = f"superseded by the rerun's parent {rerun[:8]} (here: {'; '.join(issues)})"
        rows.append({
            T.SWEEP_ID: p.sweep_id or "", "parent_run": p.run_id,
            "sweep": groups.get(p.run_id, p.run_id), "experiment": p.experiment,
            "preset": t.get(T.SWEEP_PRESET, ""), "status": p.status, "jobs": jobs,
            **counts, "runs_here": len(children), "runs_completed": int(done.sum()),
            "verdict": verdict,
        })
    cols = [T.SWEEP_ID, "parent_run", "sweep", "experiment", "preset", "status", "jobs",
            "finished", "skipped", "failed", "runs_here", "runs_completed", "verdict"]
    frame = pd.DataFrame(rows, columns=cols)
    # counts stay integers where one is missing (a column with None would turn 4 into 4.0)
    counted = ["jobs", "finished", "skipped", "failed", "runs_here", "runs_completed"]
    frame[counted] = frame[counted].astype("Int64")
    return frame


def _rerun(parents: pd.DataFrame, groups: dict[str, str], i: int) -> str:
    """The run id of the next launch of parent `i`'s sweep in the same experiment ('' when it
    is the newest)."""
    p = parents.iloc[i]
    if "start_time" not in parents:
        return ""
    same = pd.Series([groups.get(r) == groups.get(p["run_id"]) for r in parents["run_id"]],
                     index=parents.index, dtype=bool)
    later = parents[same & (parents["experiment"] == p["experiment"])
                    & (parents["start_time"] > p["start_time"])]
    return str(later.sort_values("start_time")["run_id"].iloc[0]) if len(later) else ""


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
