"""Unit tests of run health on hand-made store frames: which runs are usable, which metrics a
run is missing, and which sweeps are incomplete."""

from __future__ import annotations

import math

import pandas as pd

from reports.analysis import health
from reports.store.load import StoreData


class _Row:
    def __init__(self, metrics, params, task="rt"):
        self.metrics, self.params, self.task = metrics, params, task


def test_missing_metrics_names_keys_and_epochs():
    full = {k: 1.0 for k in ("best_epoch", "test_accuracy_std", "test_accuracy_mc",
                             "test_log_loss_std", "test_log_loss_mc")}
    keys = ["train_loss", "epoch_seconds", "train_tokens_per_s", "valid_accuracy_std",
            "valid_accuracy_mc", "valid_log_loss_std", "valid_log_loss_mc"]
    steps = {k: {1, 2, 3, 4, 5} for k in keys}
    assert health.missing_metrics(_Row(full, {"train.epochs": "5"}), steps) == ""
    steps["valid_accuracy_mc"] = {1, 4}
    out = health.missing_metrics(_Row({**full, "test_accuracy_mc": math.nan},
                                      {"train.epochs": "5"}), steps)
    assert out == "missing test_accuracy_mc, valid_accuracy_mc epochs 2-3,5"


def test_health_accepts_early_stops_and_mc_only_at_the_selected_epoch():
    """train.mc_every = 0 logs MC validation once, at the best epoch; an early stop ends the
    history at epochs_run (< train.epochs). Neither is a missing metric; a missing MC value
    at the best epoch still is."""
    final = {"best_epoch": 3.0, "epochs_run": 7.0, "test_accuracy_std": 0.8,
             "test_accuracy_mc": 0.8, "test_log_loss_std": 0.4, "test_log_loss_mc": 0.4}
    params = {"train.epochs": "20", "train.mc_every": "0"}
    every = {k: set(range(1, 8)) for k in ("train_loss", "epoch_seconds", "train_tokens_per_s",
                                             "valid_accuracy_std", "valid_log_loss_std")}
    best_only = {**every, "valid_accuracy_mc": {3}, "valid_log_loss_mc": {3}}
    assert health.missing_metrics(_Row(final, params), best_only) == ""
    no_mc = {**every, "valid_accuracy_mc": {1}, "valid_log_loss_mc": {3}}
    assert health.missing_metrics(_Row(final, params), no_mc) == \
        "missing valid_accuracy_mc epochs 3"
    every_second = {**params, "train.mc_every": "2"}
    assert health.missing_metrics(_Row(final, every_second), best_only) == \
        "missing valid_accuracy_mc epochs 2,4,6, valid_log_loss_mc epochs 2,4,6"
    older = {k: v for k, v in final.items() if k != "epochs_run"}  # no early stopping then
    out = health.missing_metrics(_Row(older, params), best_only)
    assert out.startswith("missing train_loss epochs 8-20")


def _store_runs(rows: list[dict]) -> StoreData:
    base = {"experiment": "rt", "run_name": "", "status": "FINISHED", "end_time": 0,
            "task": "rt", "framework": "torch", "variant": "naive", "completed": True,
            "failure_reason": None, "superseded_by": None, "sweep_id": None,
            "parent_run_id": None, "is_sweep_parent": False, "tags": {},
            "params": {"train.epochs": "1"},
            "metrics": {k: 0.5 for k in ("best_epoch", "test_accuracy_std", "test_accuracy_mc",
                                         "test_log_loss_std", "test_log_loss_mc")}}
    runs = pd.DataFrame([{**base, **r} for r in rows])
    runs["seed"] = runs["seed"].astype("Int64")
    keys = ["train_loss", "epoch_seconds", "train_tokens_per_s", "valid_accuracy_std",
            "valid_accuracy_mc", "valid_log_loss_std", "valid_log_loss_mc"]
    hist = pd.DataFrame([(r["run_id"], k, 1, 0.5, 0) for r in rows for k in keys],
                        columns=["run_id", "key", "step", "value", "timestamp"])
    return StoreData("sqlite:///x", {"0": "rt"}, runs, hist, runs.iloc[:0])


def test_health_keeps_the_newest_duplicate_and_flags_missing_tags():
    data = _store_runs([
        {"run_id": "old", "seed": 0, "config_hash": "h", "start_time": 1},
        {"run_id": "new", "seed": 0, "config_hash": "h", "start_time": 2},
        {"run_id": "other", "seed": 1, "config_hash": "g", "start_time": 3},
        {"run_id": "noseed", "seed": None, "config_hash": "k", "start_time": 4},
        {"run_id": "nodone", "seed": 2, "config_hash": "m", "start_time": 5,
         "completed": False},
    ])
    checked = health.check(data)
    assert sorted(checked.usable["run_id"]) == ["new", "other"]
    flagged = checked.flagged.set_index("run_id")["category"].to_dict()
    assert flagged == {"old": "duplicate", "noseed": "missing tags", "nodone": "unfinished"}


def test_a_superseded_sweep_parent_is_not_called_incomplete():
    """A sweep killed mid-way whose rerun closed its parent (KILLED, superseded_by): the
    health table says where it went on, and only the unfinished live sweep is incomplete."""
    parents = pd.DataFrame([
        {"run_id": "old0000000", "sweep_id": "s1", "experiment": "imdb", "status": "KILLED",
         "tags": {"superseded_by": "new1111111", "sweep_jobs": "40", "sweep_preset": "part3"}},
        {"run_id": "new1111111", "sweep_id": "s2", "experiment": "imdb", "status": "RUNNING",
         "tags": {"sweep_jobs": "40", "sweep_preset": "part3"}},
    ])
    runs = pd.DataFrame([{"parent_run_id": "old0000000", "sweep_id": "s1", "experiment": "imdb",
                          "completed": True, "status": "FINISHED"}])
    data = StoreData("sqlite:///results/mlflow.db", {"1": "imdb"}, runs, pd.DataFrame(), parents)
    verdicts = health.sweep_health(data).set_index("parent_run")["verdict"]
    assert verdicts["old0000000"] == "superseded by the rerun's parent new11111"
    assert verdicts["new1111111"].startswith("incomplete") and "never closed" in \
        verdicts["new1111111"]
