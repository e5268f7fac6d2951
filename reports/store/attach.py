"""Log the built report as artifacts of the sweeps it covers.

A reader browsing the MLflow UI lands on a sweep's parent run; the report about that sweep's runs
belongs next to them (artifact folder `report/`: report.md, report.html and figures/). Only the
files of this build are logged (never other files of the output folder), to every sweep parent
that has at least one training run in the report; a sweep whose runs were all filtered out
gets nothing. Logging again overwrites the same paths.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from experiments import tracking as T

ARTIFACT_DIR = "report"


def covered(runs: pd.DataFrame, parents: pd.DataFrame) -> list[str]:
    """Run ids of the parents with at least one of `runs` as a child (by parent run id, or by
    sweep id within the same experiment, as run health counts them)."""
    out = []
    for p in parents.itertuples():
        mine = (runs["parent_run_id"] == p.run_id) | (
            runs[T.SWEEP_ID].notna() & (runs[T.SWEEP_ID] == p.sweep_id)
            & (runs["experiment"] == p.experiment))
        if mine.any():
            out.append(p.run_id)
    return out


def log_report(uri: str, runs: pd.DataFrame, parents: pd.DataFrame, files: list[Path],
               figures: list[Path]) -> list[str]:
    """Log `files` under report/ and `figures` under report/figures/ of every covered parent;
    returns the parent run ids."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    targets = covered(runs, parents)
    for run_id in targets:
        T.log_artifacts(client, run_id, files, ARTIFACT_DIR)
        T.log_artifacts(client, run_id, figures, f"{ARTIFACT_DIR}/figures")
    return targets
