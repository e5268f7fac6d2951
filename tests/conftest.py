"""Shared fixtures: real data slices, Hydra composition (and the GlobalHydra a running app has),
a temporary MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from experiments.config import register

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
register()


def compose_cfg(overrides: list[str] | None = None) -> DictConfig:
    """The config `python -m experiments.train <overrides>` would see."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides or []))


def skip_unless_built(build) -> None:
    """Build a compiled binding (frameworks.native.Build) or load its cached build; skip where
    it cannot be built (each binding's fallback test covers that machine)."""
    if not build.available():
        pytest.skip(f"compiled loop unavailable: {build.reason}")


@pytest.fixture(scope="module")
def hydra_app():
    """The GlobalHydra a running app has (the callback composes with it)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A real, empty SQLite MLflow store in a temporary directory."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--dist loadgroup` on pytest 9.2: pytest-xdist 3.8 sends a test of an `xdist_group` to its
    group's worker by appending `@<group>` to the test's node id through `item._nodeid`, which
    pytest 9.2 no longer reads (its ids are structured, `item._id`), so no test would be grouped
    (pytest-dev/pytest-xdist#1386). This appends the suffix where xdist's did not take; it does
    nothing outside an xdist worker or once xdist sets the id itself."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        groups = {str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                  for m in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(groups))
        if groups and not item.nodeid.endswith(suffix):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(item.nodeid + suffix)


TINY_RT = [
    "task=rt", "model=tiny", "task.train_limit=256", "task.eval_limit=128", "train.epochs=2",
    "train.mc_samples=3",
]

# a preset's first steps on CPU, whatever its task and sizes (a few batches, one epoch)
CPU_SLICE = ["train.device=cpu", "train.epochs=1", "train.mc_samples=2", "task.batch_size=4",
             "task.bptt=5", "task.train_limit=41", "task.eval_limit=21", "train.threads=2"]


def log_tuning_stage(store: str, runs: list[tuple[str, float, list[float], int]],
                     status: str = "FINISHED", experiment: str = "imdb",
                     stage: str = "imdb_study_tune") -> None:
    """A finished launch of a study's tuning sweep (experiments/tuned.py): per run (variant,
    rate, validation log-loss per epoch, selected epoch), logged as the suite logs its runs'
    tags, params and metrics."""
    from mlflow.tracking import MlflowClient

    from experiments import tracking as T

    client = MlflowClient(store)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    parent = client.create_run(exp_id, tags={T.IS_SWEEP_PARENT: "true", T.SWEEP_PRESET: stage})
    for variant, rate, losses, best in runs:
        run = client.create_run(exp_id, tags={T.PARENT_RUN_ID: parent.info.run_id,
                                              T.VARIANT: variant, T.COMPLETED: "true"})
        client.log_param(run.info.run_id, "dropout.weight", rate)
        for step, loss in enumerate(losses, start=1):
            client.log_metric(run.info.run_id, "valid_log_loss_std", loss, step=step)
        client.log_metric(run.info.run_id, "best_epoch", best)
        client.set_terminated(run.info.run_id)
    client.set_terminated(parent.info.run_id, status)
