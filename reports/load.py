"""MLflow -> pandas: the only module that talks to the tracking store.

Runs come from MLflow's search API; metric histories are read in bulk (one query per metric key
for all runs on a SQL store) because one `get_metric_history` call per key per run costs a round
trip each and dominates the report's run time on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import metrics as M
from experiments import tracking as T
from experiments.metrics import METRICS, MODES, PER_EPOCH, TEST, VALID, parse_key
from experiments.metrics import key as metric_key
from experiments.tasks import TASK_KINDS

# Selection metric first: it picks the best epoch and is the primary metric of the report.
TASK_METRICS = {task: tuple(METRICS[kind]) for task, kind in TASK_KINDS.items()}
# and RMSE, the metric of Part 3's Cornell numbers (conf/published.yaml)
HIGHER_IS_BETTER = {**M.HIGHER_IS_BETTER, "rmse": False}
_BULK_CHUNK = 500  # run ids per SQL query (SQLite's variable limit is far above)


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
    first); empty without."""

    uri: str
    experiments: dict[str, str]  # id -> name
    runs: pd.DataFrame
    history: pd.DataFrame
    parents: pd.DataFrame
    selected: list[str] = field(default_factory=list)


def task_metrics(task: str, metric_keys: Iterable[str] = ()) -> tuple[str, ...]:
    """The metrics of a task, selection metric first; unknown tasks are inferred from the
    logged `test_<metric>_std|mc` keys."""
    if task in TASK_METRICS:
        return TASK_METRICS[task]
    found = sorted({p[1] for k in metric_keys if (p := parse_key(k)) and p[0] == TEST})
    return tuple(found)


def history_keys(metrics: Iterable[str]) -> list[str]:
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
    raw = _search(client, ids, _filter_string(filters)) if ids else []
    runs = _frame(raw, experiments)
    runs = runs[~runs[T.IS_SWEEP_PARENT]]
    parents = _frame(_search(client, ids, T.tag_equals(T.IS_SWEEP_PARENT, T.TRUE)) if ids else [],
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
    return StoreData(uri, experiments, runs, history, parents, list(selection["run_id"]))


def _metric_keys(runs: pd.DataFrame, task: str) -> set[str]:
    return {k for m in runs.loc[runs[T.TASK] == task, "metrics"] for k in m}


def _search(client, exp_ids: list[str], filter_string: str) -> list:
    out, token = [], None
    while True:
        page = client.search_runs(exp_ids, filter_string=filter_string, max_results=5000,
                                  page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def _filter_string(filters: Filters) -> str:
    """Push single-value filters into MLflow's query; lists are filtered in pandas (MLflow's
    IN on tags is not supported by every store)."""
    clauses = []
    for tag, values in ((T.TASK, filters.tasks), (T.FRAMEWORK, filters.frameworks)):
        if len(values) == 1:
            clauses.append(T.tag_equals(tag, values[0]))
    return " and ".join(clauses)


def _frame(raw: Sequence, experiments: dict[str, str]) -> pd.DataFrame:
    """One row per run; a column taken from a tag is named after the tag."""
    rows = []
    for run in raw:
        tags, info, params = run.data.tags, run.info, run.data.params
        seed = tags.get(T.SEED, params.get("seed"))
        rows.append({
            "run_id": info.run_id,
            "experiment": experiments.get(info.experiment_id, info.experiment_id),
            "run_name": info.run_name or tags.get(T.RUN_NAME, ""),
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            T.TASK: tags.get(T.TASK) or params.get("task.name") or "",
            T.FRAMEWORK: tags.get(T.FRAMEWORK) or params.get("framework.name") or "",
            T.VARIANT: tags.get(T.VARIANT) or params.get("dropout.variant") or "",
            T.SEED: int(seed) if seed is not None and str(seed).lstrip("-").isdigit() else None,
            T.CONFIG_HASH: tags.get(T.CONFIG_HASH),
            T.COMPLETED: tags.get(T.COMPLETED) == T.TRUE,
            T.FAILURE_REASON: tags.get(T.FAILURE_REASON),
            T.SUPERSEDED_BY: tags.get(T.SUPERSEDED_BY),
            T.SWEEP_ID: tags.get(T.SWEEP_ID),
            "parent_run_id": tags.get(T.PARENT_RUN_ID),
            T.IS_SWEEP_PARENT: tags.get(T.IS_SWEEP_PARENT) == T.TRUE,
            "params": dict(params),
            "tags": dict(tags),
            "metrics": dict(run.data.metrics),
        })
    columns = ["run_id", "experiment", "run_name", "status", "start_time", "end_time", T.TASK,
               T.FRAMEWORK, T.VARIANT, T.SEED, T.CONFIG_HASH, T.COMPLETED, T.FAILURE_REASON,
               T.SUPERSEDED_BY, T.SWEEP_ID, "parent_run_id", T.IS_SWEEP_PARENT, "params",
               "tags", "metrics"]
    frame = pd.DataFrame(rows, columns=columns)
    frame[T.SEED] = frame[T.SEED].astype("Int64")
    flags = [T.COMPLETED, T.IS_SWEEP_PARENT]
    frame[flags] = frame[flags].astype(bool)
    for col in (T.FAILURE_REASON, T.SUPERSEDED_BY, T.SWEEP_ID, "parent_run_id", T.CONFIG_HASH):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def _is_sweep(frame: pd.DataFrame, sweep: str | None) -> pd.Series:
    if not sweep:
        return pd.Series(False, index=frame.index)
    return (frame[T.SWEEP_ID] == sweep) | (frame["run_id"] == sweep)


def sweep_groups(parents: pd.DataFrame) -> dict[str, str]:
    """{parent run id: the sweep it launched}. A sweep interrupted and launched again gets a
    new parent (and sweep_id) each time; its launches share the tag sweep_key, and a parent the
    rerun closed points to the rerun's parent by superseded_by (parents logged before sweep_key
    existed have only that link). Parents joined by either are one sweep, named by its
    sweep_key, else by its oldest parent's run id; a parent with neither is a sweep alone."""
    if parents.empty:
        return {}
    ordered = _oldest_first(parents)
    ids = list(ordered["run_id"])
    root = {r: r for r in ids}

    def find(r: str) -> str:
        while root[r] != r:
            root[r] = root[root[r]]
            r = root[r]
        return r

    def join(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:  # the older parent stays the root
            keep, drop = (ra, rb) if ids.index(ra) < ids.index(rb) else (rb, ra)
            root[drop] = keep

    first_of_key: dict[str, str] = {}
    for run_id, tags in zip(ordered["run_id"], ordered["tags"], strict=True):
        key = _tag(tags, T.SWEEP_KEY)
        if key:
            join(first_of_key.setdefault(key, run_id), run_id)
        newer = _tag(tags, T.SUPERSEDED_BY)
        if newer in root:
            join(run_id, newer)
    keys = {find(r): _tag(t, T.SWEEP_KEY) for r, t in zip(ids, ordered["tags"], strict=True)
            if _tag(t, T.SWEEP_KEY)}
    return {r: keys.get(find(r)) or find(r) for r in ids}


def _tag(tags: object, name: str) -> str:
    return str(tags.get(name) or "") if isinstance(tags, dict) else ""


def sweep_selection(parents: pd.DataFrame, sweep: str | None) -> pd.DataFrame:
    """The parents `--sweep X` covers, oldest first: every parent of the sweep X launched (X a
    sweep_id or a parent's run id), across its relaunches (`sweep_groups`); X's own parents
    when it has no other launch; none without X or when no parent matches."""
    hit = _is_sweep(parents, sweep)
    if not hit.any():
        return parents[hit]
    groups = sweep_groups(parents)
    wanted = {groups[r] for r in parents.loc[hit, "run_id"]}
    return _oldest_first(parents[[groups[r] in wanted for r in parents["run_id"]]])


def _oldest_first(parents: pd.DataFrame) -> pd.DataFrame:
    return parents.sort_values("start_time", kind="stable") if "start_time" in parents \
        else parents


def job_hashes(client, selection: pd.DataFrame) -> set[str]:
    """The config hashes of the jobs of the newest launch in `selection` that logged them
    (experiments/sweep.py); empty when none did (parents logged before that artifact)."""
    import os
    import tempfile

    for run_id in reversed(list(selection["run_id"])):
        if T.SWEEP_JOB_HASHES not in {a.path for a in client.list_artifacts(run_id)}:
            continue  # an older parent
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # one small file
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, T.SWEEP_JOB_HASHES, tmp)
            return {line.strip() for line in Path(path).read_text().splitlines() if line.strip()}
    return set()


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


def read_histories(client, run_ids: list[str], keys: list[str]) -> pd.DataFrame:
    """Long table (run_id, key, step, value, timestamp) of every history point; when a step was
    logged twice the later value wins."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    if run_ids and hasattr(store, "get_metric_history_bulk"):
        rows = _bulk(store, run_ids, keys)
    else:
        rows = _per_run(client, run_ids, keys)
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "value", "timestamp"])
    frame = frame.sort_values(["run_id", "key", "step", "timestamp"], kind="stable")
    return frame.drop_duplicates(["run_id", "key", "step"], keep="last").reset_index(drop=True)


def _bulk(store, run_ids: list[str], keys: list[str]) -> list[tuple]:
    """One SQL query per metric key per chunk of runs (SqlAlchemyStore)."""
    rows = []
    for key in keys:
        for i in range(0, len(run_ids), _BULK_CHUNK):
            chunk = run_ids[i : i + _BULK_CHUNK]
            for m in store.get_metric_history_bulk(chunk, key, max_results=10**9):
                rows.append((m.run_id, m.key, m.step, m.value, m.timestamp))
    return rows


def _per_run(client, run_ids: list[str], keys: list[str]) -> list[tuple]:
    """Fallback for stores without a bulk query (file store, REST): calls in parallel threads."""
    def one(pair: tuple[str, str]) -> list[tuple]:
        run_id, key = pair
        return [(run_id, m.key, m.step, m.value, m.timestamp)
                for m in client.get_metric_history(run_id, key)]

    pairs = [(r, k) for r in run_ids for k in keys]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return [row for rows in pool.map(one, pairs) for row in rows]


def test_predictions(uri: str, run_ids: Iterable[str]) -> dict[str, np.ndarray]:
    """{run id: (N, 3) array of label, p_std, p_mc} from each run's `test_predictions.tsv`;
    runs logged before the artifact existed (or of a language model) are left out."""
    import tempfile

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run_id in run_ids:
            try:
                path = client.download_artifacts(run_id, T.TEST_PREDICTIONS, tmp)
            except Exception:  # absent: an older run (or a language model), left out
                continue
            out[run_id] = np.loadtxt(path, skiprows=1, ndmin=2)
    return out
