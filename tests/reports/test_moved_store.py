"""A store moved with its artifacts (a clone, a copied results/ folder, a worktree that is gone)
still gives the report its runs' test predictions: MLflow recorded the artifact root as an
absolute path of the checkout that logged them."""

from __future__ import annotations

import shutil

import numpy as np
from mlflow.tracking import MlflowClient

from experiments import tracking as T
from reports.store.predictions import test_predictions as read_predictions


def test_predictions_are_found_beside_a_moved_sqlite_store(tmp_path):
    old, new = tmp_path / "old" / "results", tmp_path / "new" / "results"
    old.mkdir(parents=True)
    uri = f"sqlite:///{old / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp_id = T.experiment_id(client, "imdb", uri)
    run_id = T.create_run(client, exp_id, {T.COMPLETED: "true"})
    table = np.array([[1, 0.9, 0.8], [0, 0.3, 0.4]])
    source = tmp_path / T.TEST_PREDICTIONS
    np.savetxt(source, table, header="label\tp_std\tp_mc", delimiter="\t", comments="")
    client.log_artifact(run_id, str(source))
    client.set_terminated(run_id)
    assert np.array_equal(read_predictions(uri, [run_id])[run_id], table)

    new.parent.mkdir()
    shutil.move(old, new)
    moved = read_predictions(f"sqlite:///{new / 'mlflow.db'}", [run_id])
    assert np.array_equal(moved[run_id], table)
    assert read_predictions(f"sqlite:///{new / 'mlflow.db'}", ["0" * 32]) == {}
