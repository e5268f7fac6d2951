"""Early stopping (`train.patience`), the selection metric (`train.select_on`) and MC validation
only at the selected epoch (`train.mc_every=0`), through real tiny runs into a real store."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf, open_dict

from experiments.config import config_hash
from experiments.run import execute
from tests.conftest import TINY_RT, compose_cfg

# one xdist worker runs this module, so its module-scoped early-stopped run is made once
pytestmark = pytest.mark.xdist_group("early_stopping")

# a learning rate that overfits the tiny slice within a few epochs, so validation log-loss
# turns upward and patience has something to do
OVERFIT = [*TINY_RT, "variant=naive", "train.lr=0.05", "train.epochs=8",
           "train.select_on=log_loss"]


def history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    store = f"sqlite:///{tmp_path_factory.mktemp('es') / 'mlflow.db'}"
    cfg = compose_cfg([*OVERFIT, "train.patience=2", "train.mc_every=0", f"tracking.uri={store}"])
    return MlflowClient(store), cfg, execute(cfg)


def expected_stop(scores: list[float], patience: int) -> tuple[int, int]:
    """(best epoch, last epoch run) for lower-is-better scores, from the definition."""
    best, since = 0, 0
    for i, score in enumerate(scores):
        if i == 0 or score < scores[best]:
            best, since = i, 0
        else:
            since += 1
            if since == patience:
                return best + 1, i + 1
    return best + 1, len(scores)


def test_stops_after_patience_epochs_without_a_better_validation_log_loss(stopped):
    client, cfg, result = stopped
    valid = history(client, result.run_id, "valid_log_loss_std")
    assert sorted(valid) == list(range(1, len(valid) + 1))
    best, last = expected_stop([valid[e] for e in sorted(valid)], patience=2)
    metrics = client.get_run(result.run_id).data.metrics
    assert last < cfg.train.epochs, "the slice should overfit: nothing was stopped early"
    assert (metrics["best_epoch"], metrics["epochs_run"]) == (best, last)
    assert len(history(client, result.run_id, "train_loss")) == last


def test_the_selection_metric_is_tagged(stopped):
    client, _, result = stopped
    assert client.get_run(result.run_id).data.tags["select_on"] == "log_loss"


def test_mc_validation_runs_only_at_the_selected_epoch(stopped):
    client, _, result = stopped
    best = int(client.get_run(result.run_id).data.metrics["best_epoch"])
    assert list(history(client, result.run_id, "valid_accuracy_mc")) == [best]
    assert list(history(client, result.run_id, "valid_log_loss_mc")) == [best]


def test_skipping_mc_validation_changes_no_training_step(stopped, tmp_path):
    client, _, result = stopped
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    every = execute(compose_cfg([*OVERFIT, "train.patience=2", "train.mc_every=1",
                                 f"tracking.uri={store}"]))
    other = MlflowClient(store)
    for key in ("train_loss", "valid_log_loss_std", "valid_accuracy_std"):
        assert history(other, every.run_id, key) == history(client, result.run_id, key), key
    got, want = other.get_run(every.run_id).data.metrics, client.get_run(result.run_id).data.metrics
    assert got["test_accuracy_std"] == want["test_accuracy_std"]
    assert got["best_epoch"] == want["best_epoch"]
    assert len(history(other, every.run_id, "valid_accuracy_mc")) == got["epochs_run"]


def test_the_best_epoch_weights_give_the_test_metrics(stopped, tmp_path):
    """A run capped at the best epoch (no later training) reaches the same test metrics:
    the weights kept are those of the best epoch, not of the last one."""
    client, _, result = stopped
    best = int(client.get_run(result.run_id).data.metrics["best_epoch"])
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    capped = execute(compose_cfg([*OVERFIT, f"train.epochs={best}", "train.mc_every=0",
                                  f"tracking.uri={store}"]))
    got = MlflowClient(store).get_run(capped.run_id).data.metrics
    want = client.get_run(result.run_id).data.metrics
    assert got["test_log_loss_std"] == pytest.approx(want["test_log_loss_std"], rel=1e-9)
    assert got["test_accuracy_std"] == want["test_accuracy_std"]


def test_resume_skips_the_completed_config_and_patience_is_part_of_it(stopped):
    client, cfg, result = stopped
    assert execute(cfg).status == "SKIPPED"
    longer = compose_cfg([*OVERFIT, "train.patience=3", "train.mc_every=0",
                          f"tracking.uri={cfg.tracking.uri}"])
    assert config_hash(longer) != config_hash(cfg)


def test_keys_added_later_keep_older_hashes_at_their_neutral_value():
    """A config from before patience/select_on/mc_every existed hashes as it did then."""
    cfg = compose_cfg(TINY_RT)
    old = OmegaConf.create(OmegaConf.to_container(cfg))
    with open_dict(old):
        for key in ("patience", "select_on", "mc_every"):
            del old.train[key]
        del old["study"]
        old["published"] = {"source": "x", "test": {"accuracy": 0.5}}  # older presets had it
    assert config_hash(cfg) == config_hash(old)
    assert config_hash(compose_cfg([*TINY_RT, "train.patience=1"])) != config_hash(cfg)
