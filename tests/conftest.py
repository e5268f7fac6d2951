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


TINY_RT = [
    "task=rt", "model=tiny", "task.train_limit=256", "task.eval_limit=128", "train.epochs=2",
    "train.mc_samples=3",
]
