"""Each run's test predictions (artifact `test_predictions.tsv`), for the interval over seeds
and test examples of a primary question."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from experiments import tracking as T


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
