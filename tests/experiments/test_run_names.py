"""Runs the MLflow UI can tell apart: a run's name carries every axis its sweep varies beyond
the defaults (the cell, a preset, a knob), so that no two runs of a sweep share a name; a run at
the defaults keeps the plain framework/variant/task/s<seed>."""

from __future__ import annotations

import pytest

from experiments import run_names, sweep_jobs
from tests.support.cli import run_cli, runs
from tests.support.sweep_grid import grid

# the run's name from the job as the sweep composes it, with the axes its launcher hands it


def _names(jobs: list[sweep_jobs.Job]) -> list[str]:
    axes = run_names.varied_axes(j.overrides for j in jobs)
    return [run_names.run_name(j.cfg.framework.name.value, j.cfg.dropout.variant.value,
                              j.cfg.task.name.value, j.cfg.seed, j.overrides, axes,
                              dict(_split(o) for o in j.overrides).get("preset"))
            for j in jobs if not j.skip]


def _split(line: str) -> tuple[str, str]:
    key, _, value = line.partition("=")
    return key, value


@pytest.mark.parametrize("preset", ["cpu", "part3", "smoke"])
def test_no_two_jobs_of_a_sweep_share_a_run_name(hydra_app, preset):
    names = _names(sweep_jobs.compose_jobs("config", grid(preset)))
    twins = sorted({n for n in names if names.count(n) > 1})
    assert not twins, f"{len(twins)} names used twice in sweep {preset}: {twins[:4]}"


def test_the_cpu_sweep_names_the_cell_and_keeps_default_names(hydra_app):
    names = set(_names(sweep_jobs.compose_jobs("config", grid("cpu"))))
    assert {"keras/keras_impl0/rt/s0", "keras/keras_impl0/rt/s0/cell=gru",
            "torch/none/rt/s2", "torch/none/rt/s2/cell=gru"} <= names


def test_a_non_default_value_is_named_only_where_it_is_not_the_default():
    assert run_names.varied_axes([["seed=0", "train.lr=0.001"], ["seed=0", "train.lr=0.5"]]) == \
        ["train.lr"]
    name = run_names.run_name("torch", "none", "rt", 0, ["train.lr=1e-3", "model.cell=lstm",
                                                        "dropout.per_step=false"], ["train.lr"])
    assert name == "torch/none/rt/s0"
    name = run_names.run_name("torch", "semeniuta", "rt", 1,
                             ["train.lr=0.5", "dropout.per_step=true", "model.cell=gru"],
                             ["train.lr"], "some_preset")
    assert name == "torch/semeniuta/rt/s1/some_preset/per_step=true/cell=gru/lr=0.5"


@pytest.mark.e2e
def test_a_sweeps_runs_are_named_by_the_axes_it_varies(tmp_path):
    """The real plumbing: the launcher hands the varied axes to its jobs, each job names its
    run; before, the LSTM and the GRU run (and both learning rates) had one name."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_cli("-m", "sweep=smoke", "variant=none", "seed=0", "model.cell=lstm,gru",
                  "train.epochs=1", "task.train_limit=256", "task.eval_limit=128",
                  "train.lr=1e-3,0.01", f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path}/s")
    assert out.returncode == 0, out.stderr[-3000:]
    names = sorted(r.info.run_name for r in runs(store) if "config_hash" in r.data.tags)
    assert names == ["torch/none/rt/s0", "torch/none/rt/s0/cell=gru",
                     "torch/none/rt/s0/cell=gru/lr=0.01", "torch/none/rt/s0/lr=0.01"]
