"""Metric histories, read in bulk: one query per metric key for all runs on a SQL store,
because one `get_metric_history` call per key per run costs a round trip each and dominates the
report's run time on SQLite."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd

_BULK_CHUNK = 500  # run ids per SQL query (SQLite's variable limit is far above)


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
