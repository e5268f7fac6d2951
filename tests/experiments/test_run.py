"""One tiny run end to end into a real temporary SQLite store."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from experiments.run import evaluate, execute, prepare
from frameworks.base import load_backend
from tests.conftest import TINY_RT, compose_cfg

# one xdist worker runs this module, so its module-scoped run is made once
pytestmark = pytest.mark.xdist_group("naive_run")


@pytest.fixture(scope="module")
def naive_run(tmp_path_factory):
    store = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    cfg = compose_cfg([*TINY_RT, "variant=naive", f"tracking.uri={store}"])
    return store, cfg, execute(cfg)


def test_run_logs_params_metrics_tags_and_config(naive_run):
    store, _, result = naive_run
    client = MlflowClient(store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["completed"] == "true"
    assert (tags["task"], tags["framework"], tags["variant"], tags["seed"]) == (
        "rt", "torch", "naive", "0")
    assert tags["mlflow.runName"] == "torch/naive/rt/s0"
    assert len(tags["config_hash"]) == 16 and tags["torch_version"].startswith("2.")
    params = run.data.params
    assert params["dropout.input"] == "0.25" and params["model.hidden_size"] == "16"
    assert params["task.name"] == "rt" and params["train.mc_samples"] == "3"
    # naive runs nn.LSTM itself: no per-step loop computed any of it
    assert params["compute_path"] == "none"
    for key in ("train_loss", "valid_accuracy_std", "valid_accuracy_mc", "valid_log_loss_mc",
                "epoch_seconds", "train_tokens_per_s"):
        history = client.get_metric_history(result.run_id, key)
        assert [m.step for m in history] == [1, 2], key
    metrics = run.data.metrics
    assert 0.0 <= metrics["test_accuracy_std"] <= 1.0 and metrics["test_log_loss_mc"] > 0
    assert metrics["best_epoch"] in (1.0, 2.0)
    artifacts = [a.path for a in client.list_artifacts(result.run_id)]
    assert "config.yaml" in artifacts


def test_test_predictions_are_logged_per_example_and_give_the_logged_metrics(naive_run):
    """The per-example artifact a bootstrap over test examples reads: one line per test
    example, and its own accuracy and log-loss (recomputed here) equal the logged ones."""
    import numpy as np

    store, _, result = naive_run
    client = MlflowClient(store)
    path = client.download_artifacts(result.run_id, "test_predictions.tsv")
    table = np.loadtxt(path, skiprows=1, ndmin=2)
    metrics = client.get_run(result.run_id).data.metrics
    assert table.shape[1] == 3 and len(table) > 10
    for column, mode in ((1, "std"), (2, "mc")):
        p_true = table[:, column]
        assert np.mean(p_true > 0.5) == pytest.approx(metrics[f"test_accuracy_{mode}"], abs=1e-9)
        assert -np.mean(np.log(np.clip(p_true, 1e-7, 1))) == pytest.approx(
            metrics[f"test_log_loss_{mode}"], abs=2e-3)
    for key in ("epoch_cpu_seconds", "eval_cpu_seconds"):
        history = client.get_metric_history(result.run_id, key)
        assert [m.step for m in history] == [1, 2] and all(m.value > 0 for m in history), key


def test_best_epoch_is_the_best_validation_accuracy(naive_run):
    store, _, result = naive_run
    client = MlflowClient(store)
    history = client.get_metric_history(result.run_id, "valid_accuracy_std")
    best = max(history, key=lambda m: (m.value, -m.step))
    assert client.get_run(result.run_id).data.metrics["best_epoch"] == best.step


def test_rerun_of_a_completed_config_is_skipped(naive_run):
    store, cfg, result = naive_run
    again = execute(cfg)
    assert again.status == "SKIPPED" and again.run_id == result.run_id
    runs = MlflowClient(store).search_runs(
        [MlflowClient(store).get_run(result.run_id).info.experiment_id])
    assert len(runs) == 1


def test_mc_equals_standard_without_dropout(store):
    prep = prepare(compose_cfg([*TINY_RT, "variant=none", f"tracking.uri={store}"]))
    backend = load_backend("torch")
    runner = backend.Runner(prep.spec, prep.plan.optim, seed=0)
    runner.load_weights(prep.weights)
    out = evaluate(runner, prep, "valid")
    assert out["accuracy_mc"] == out["accuracy_std"]
    assert out["log_loss_mc"] == pytest.approx(out["log_loss_std"], abs=1e-12)


@pytest.mark.parametrize("framework", ["torch", pytest.param("keras", marks=pytest.mark.keras)])
def test_a_forced_rerun_repeats_every_logged_number(tmp_path, framework):
    """What docs/CONFIGURATION.md promises ("Reproducibility"): the same config on the same
    machine and thread count logs the same numbers, bit for bit (per-epoch histories and the
    final test metrics)."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_cfg([*TINY_RT, f"framework={framework}", "variant=keras_impl2",
                       "train.threads=1", f"tracking.uri={store}", "tracking.force=true"])
    first, second = execute(cfg), execute(cfg)
    assert first.run_id != second.run_id
    client = MlflowClient(store)

    def numbers(run_id: str) -> dict:
        metrics = client.get_run(run_id).data.metrics
        keys = [k for k in metrics if not k.endswith(("seconds", "tokens_per_s"))]
        return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)]
                for k in keys}

    a, b = numbers(first.run_id), numbers(second.run_id)
    assert "train_loss" in a and "test_accuracy_mc" in a
    assert a == b
