"""The two IMDB study sweeps (`part3`, `imdb_questions`): which jobs they run, and that their
primary questions name arms they actually run."""

from __future__ import annotations

import itertools

from hydra import compose, initialize_config_dir

from experiments.sweep_jobs import skip_reason
from tests.conftest import CONF


def sweep_cfg(name: str, job: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        grid = compose(config_name="config", overrides=[f"sweep={name}"], return_hydra_config=True)
        cfg = compose(config_name="config", overrides=[f"sweep={name}", *job])
    return grid.hydra.sweeper.params, cfg


def jobs(name: str) -> list[tuple[list[str], object]]:
    params, _ = sweep_cfg(name, [])
    axes = [[f"{k}={v}" for v in str(values).split(",")] for k, values in params.items()]
    return [(list(job), sweep_cfg(name, list(job))[1]) for job in itertools.product(*axes)]


def arm_name(cfg) -> str:
    return f"{cfg.framework.name.value}/{cfg.dropout.variant.value}"


def test_part3_runs_its_8_arms_with_5_seeds_and_stops_early():
    run = [(job, cfg) for job, cfg in jobs("part3") if not skip_reason(cfg)]
    assert len(run) == 40
    presets = {job[0].removeprefix("preset=") for job, _ in run}
    assert len(presets) == 8 and all(p.startswith("part3_imdb_") for p in presets)
    assert {cfg.seed for _, cfg in run} == {0, 1, 2, 3, 4}
    assert all(cfg.train.patience == 5 and cfg.train.epochs == 20 for _, cfg in run)
    primary = sweep_cfg("part3", [])[1].study.primary
    assert primary and {side for q in primary for side in q.split(" vs ")} <= presets


def test_imdb_questions_runs_exactly_its_11_arms_at_matched_settings():
    run = [cfg for _, cfg in jobs("imdb_questions") if not skip_reason(cfg)]
    arms = {arm_name(cfg) for cfg in run}
    assert arms == {"keras/keras_impl0", "keras/keras_impl1", "keras/keras_impl2", "keras/none",
                    "keras/naive", "torch/weightdrop", "torch/weightdrop_variational",
                    "torch/weightdrop_column", "torch/locked", "torch/none", "torch/naive"}
    assert len(run) == 55
    for cfg in run:
        d = cfg.dropout
        used = [r for r in (d.input, d.recurrent, d.weight, d.output) if r > 0]
        assert all(r == 0.25 for r in used) and d.embedding == 0
        assert (cfg.train.lr, cfg.train.optimizer.value, cfg.model.hidden_size) == (
            0.001, "adam", 128)
    primary = run[0].study.primary
    assert {side for q in primary for side in q.split(" vs ")} <= arms
    assert "keras/keras_impl0 vs keras/keras_impl2" in primary
