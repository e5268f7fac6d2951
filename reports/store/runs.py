"""MLflow runs -> one pandas row per run: the columns every part of the report reads (task,
framework, variant, seed and the tags that say whether a run is a result), with the params, tags
and final metrics kept as dict columns."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from experiments import tracking as T


def search(client, exp_ids: list[str], filter_string: str) -> list:
    """Every run of `exp_ids` matching `filter_string`, page after page."""
    out, token = [], None
    while True:
        page = client.search_runs(exp_ids, filter_string=filter_string, max_results=5000,
                                  page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def frame(raw: Sequence, experiments: dict[str, str]) -> pd.DataFrame:
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
