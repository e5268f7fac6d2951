"""Each run's test predictions (artifact `test_predictions.tsv`), for the interval over seeds
and test examples of a primary question."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from experiments import tracking as T
from experiments import tracking_store


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
                path = moved_artifact(uri, client, run_id, T.TEST_PREDICTIONS)
                if path is None:
                    continue
            out[run_id] = np.loadtxt(path, skiprows=1, ndmin=2)
    return out


def moved_artifact(uri: str, client, run_id: str, name: str) -> str | None:
    """A SQLite store's artifact where it lies now, beside the database, when the checkout
    that logged it has moved: MLflow records each experiment's artifact root as the absolute
    path of the checkout it was created from (a clone, a copied results/ folder, a worktree
    that is gone). None where it is not there either."""
    db = tracking_store.sqlite_path(uri)
    if db is None:
        return None
    try:
        experiment = client.get_experiment(client.get_run(run_id).info.experiment_id).name
    except Exception:  # noqa: BLE001  (no such run in this store)
        return None
    path = db.parent / "artifacts" / experiment / run_id / "artifacts" / name
    return str(path) if path.is_file() else None
