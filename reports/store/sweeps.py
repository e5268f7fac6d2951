"""Sweeps across their launches: which parent runs are one sweep (a sweep interrupted and
launched again gets a new parent each time), which parents `--sweep` selects, and the config
hashes of the jobs a launch planned (its artifact)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments import tracking as T


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
