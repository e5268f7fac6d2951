"""MLflow -> pandas: what the report reads from the tracking store, and the filters that
select it (experiments, tasks, frameworks, variants, one sweep across its launches).

The store package is the only part of the report that talks to MLflow: this module reads the
runs (`reports.store.runs`) and their metric histories (`reports.store.history`), the sweeps'
parents and, with `--sweep`, every launch of that sweep (`reports.store.sweeps`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from experiments import tracking as T
from experiments.metrics import MODES, PER_EPOCH, VALID
from experiments.metrics import key as metric_key
from reports.metrics import task_metrics
from reports.store.history import read_histories
from reports.store.runs import frame, search
from reports.store.sweeps import job_hashes, sweep_selection
from reports.store.tuning import COLUMNS as TUNING_COLUMNS
from reports.store.tuning import grids


class StoreError(LookupError):
    """The store lacks what was asked for (an experiment); the message says what it has."""


@dataclass
class Filters:
    """What to report on; None or empty means everything."""

    experiments: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    frameworks: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    # a sweep_id or the run id of a sweep's parent run: selects every launch of that sweep
    # (`sweep_selection`)
    sweep: str | None = None


@dataclass
class StoreData:
    """`runs`: one row per training run (parent runs of sweeps excluded), with `params`, `tags`
    and `metrics` (latest values) as dict columns. `history`: long table run_id, key, step,
    value. `parents`: the sweep parent runs the selected runs belong to. `selected`: with
    `Filters.sweep`, the run ids of the parents it covers (every launch of the sweep, oldest
    first); empty without. `tuning`: the grids of the earlier stages whose choices runs took
    (`reports.store.tuning.grids`)."""

    uri: str
    experiments: dict[str, str]  # id -> name
    runs: pd.DataFrame
    history: pd.DataFrame
    parents: pd.DataFrame
    selected: list[str] = field(default_factory=list)
    tuning: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=TUNING_COLUMNS))


def history_keys(metrics: Iterable[str]) -> list[str]:
    """The per-epoch keys the report reads for a task with these metrics."""
    return [*PER_EPOCH, *(metric_key(VALID, m, mode) for m in metrics for mode in MODES)]


def load(uri: str, filters: Filters | None = None) -> StoreData:
    """Read every run matching `filters` and the histories the report needs."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    filters = filters or Filters()
    client = MlflowClient(uri)
    exps = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
    if filters.experiments:
        wanted = set(filters.experiments)
        exps = [e for e in exps if e.name in wanted or e.experiment_id in wanted]
        missing = wanted - {e.name for e in exps} - {e.experiment_id for e in exps}
        if missing:
            names = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
            raise StoreError(f"experiment(s) {', '.join(sorted(missing))} not in store {uri}; "
                              f"it has: {names}")
    experiments = {e.experiment_id: e.name for e in exps}
    ids = list(experiments)
    raw = search(client, ids, _filter_string(filters)) if ids else []
    runs = frame(raw, experiments)
    runs = runs[~runs[T.IS_SWEEP_PARENT]]
    parents = frame(search(client, ids, T.tag_equals(T.IS_SWEEP_PARENT, T.TRUE)) if ids else [],
                    experiments)
    selection = sweep_selection(parents, filters.sweep)
    hashes = job_hashes(client, selection)
    runs = _apply_filters(runs, selection, filters, hashes).reset_index(drop=True)
    narrowed = filters.sweep or filters.tasks or filters.frameworks or filters.variants
    if narrowed:  # the sweeps of the selected runs; unfiltered, every sweep (even run-less)
        parents = parents[parents["run_id"].isin(runs["parent_run_id"])
                          | parents[T.SWEEP_ID].isin(runs[T.SWEEP_ID].dropna())
                          | parents["run_id"].isin(selection["run_id"])]
    parents = parents.reset_index(drop=True)
    keys = sorted({k for t in runs[T.TASK].unique()
                   for k in history_keys(task_metrics(t, _metric_keys(runs, t)))})
    history = read_histories(client, list(runs["run_id"]), keys)
    return StoreData(uri, experiments, runs, history, parents, list(selection["run_id"]),
                     grids(uri, runs))


def _metric_keys(runs: pd.DataFrame, task: str) -> set[str]:
    """Every final metric key logged by a run of `task` (to infer an unknown task's metrics)."""
    return {k for m in runs.loc[runs[T.TASK] == task, "metrics"] for k in m}


def _filter_string(filters: Filters) -> str:
    """Push single-value filters into MLflow's query; lists are filtered in pandas (MLflow's
    IN on tags is not supported by every store)."""
    clauses = []
    for tag, values in ((T.TASK, filters.tasks), (T.FRAMEWORK, filters.frameworks)):
        if len(values) == 1:
            clauses.append(T.tag_equals(tag, values[0]))
    return " and ".join(clauses)


def _apply_filters(runs: pd.DataFrame, selection: pd.DataFrame, f: Filters,
                   hashes: set[str] = frozenset()) -> pd.DataFrame:
    """`selection`: the parents of the sweep selected by `f.sweep` (`sweep_selection`);
    `hashes`: its jobs' config hashes (`job_hashes`), whose runs belong to the sweep whichever
    launch or sweep ran them (a job skipped because that config had completed before)."""
    keep = pd.Series(True, index=runs.index)
    for column, values in ((T.TASK, f.tasks), (T.FRAMEWORK, f.frameworks),
                           (T.VARIANT, f.variants)):
        if values:
            keep &= runs[column].isin(values)
    if f.sweep:
        ids = set(selection[T.SWEEP_ID].dropna()) | {f.sweep}
        keep &= (runs[T.SWEEP_ID].isin(ids) | runs["parent_run_id"].isin(set(selection["run_id"]))
                 | runs[T.CONFIG_HASH].isin(hashes))
    return runs[keep]
