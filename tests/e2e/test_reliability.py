"""Never lose a result, never report a broken run as one: divergence, kill and resume,
concurrent logging, determinism and the no-download promise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from experiments.run import execute
from tests.conftest import REPO, TINY_RT, compose_cfg
from tests.support.cli import run_cli, runs

pytestmark = pytest.mark.e2e


def children(store: str):
    return [r for r in runs(store) if r.data.tags.get("is_sweep_parent") != "true"]


def test_divergence_fails_the_run_and_the_sweep_goes_on(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_cli("-m", "sweep=smoke", "variant=none", "seed=0", "train.optimizer=sgd",
                  "train.lr=0.5,1e38", f"tracking.uri={store}", f"hydra.sweep.dir={tmp_path / 's'}")
    assert out.returncode == 1  # something failed: non-zero exit after all jobs ran
    assert "[sweep] summary: 1 done, 0 skipped, 1 failed" in out.stderr
    by_lr = {r.data.params["train.lr"]: r for r in children(store)}
    good, bad = by_lr["0.5"], by_lr["1e+38"]
    assert good.info.status == "FINISHED" and good.data.tags["completed"] == "true"
    assert bad.info.status == "FAILED" and bad.data.tags["completed"] == "false"
    assert "DivergenceError: epoch 1" in bad.data.tags["failure_reason"]
    assert bad.data.params["dropout.variant"] == "none"  # what was logged is kept


def test_killed_worker_is_redone_on_rerun_and_never_looks_finished(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "sweep=smoke", "variant=none", "seed=0,1", "train.epochs=40",
            "task.train_limit=2048", f"tracking.uri={store}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sweep = subprocess.Popen(
        [sys.executable, "-m", "experiments.train", *args, f"hydra.sweep.dir={tmp_path / 'a'}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    victim = None
    try:
        deadline = time.time() + 240
        while victim is None and time.time() < deadline:
            time.sleep(1)
            started = (tmp_path / "a").exists()  # jobs launch after the store was created
            for run in children(store) if started else []:
                history = MlflowClient(store).get_metric_history(run.info.run_id, "train_loss")
                if run.data.tags.get("seed") == "1" and history:  # mid-run: epochs logged
                    victim = run
        assert victim is not None, "no run reached its first epoch"
        os.kill(int(victim.data.tags["pid"]), signal.SIGKILL)
        sweep.wait(timeout=240)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode != 0
    killed = MlflowClient(store).get_run(victim.info.run_id)
    assert killed.data.tags["completed"] == "false"

    rerun = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'b'}", timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    final = children(store)
    completed = [r for r in final if r.data.tags["completed"] == "true"]
    assert sorted(r.data.tags["seed"] for r in completed) == ["0", "1"]  # one per config
    assert len({r.data.tags["config_hash"] for r in completed}) == 2
    killed = MlflowClient(store).get_run(victim.info.run_id)
    assert killed.info.status == "KILLED" and killed.data.tags["completed"] == "false"
    assert killed.data.tags["superseded_by"] in {r.info.run_id for r in completed}
    for run in final:
        if run.data.tags["completed"] != "true":
            assert run.info.status != "FINISHED"


def test_four_parallel_jobs_share_a_fresh_sqlite_store(tmp_path):
    (tmp_path / "fresh").mkdir()  # a store's folder must exist (outside results/)
    store = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    out = run_cli("-m", "sweep=smoke", "hydra.launcher.n_jobs=4", "seed=0,1",
                  "variant=none,naive", "train.epochs=1", f"tracking.uri={store}",
                  f"hydra.sweep.dir={tmp_path / 's'}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[sweep] summary: 4 done, 0 skipped, 0 failed" in out.stderr
    assert "database is locked" not in out.stderr and "Traceback" not in out.stderr
    assert sorted(r.info.status for r in children(store)) == ["FINISHED"] * 4


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_same_seed_same_numbers_other_seed_other_numbers(store, framework):
    base = [*TINY_RT, f"framework={framework}", "variant=keras_impl1", f"tracking.uri={store}",
            "tracking.force=true"]
    first = execute(compose_cfg([*base, "seed=3"])).metrics
    second = execute(compose_cfg([*base, "seed=3"])).metrics
    other = execute(compose_cfg([*base, "seed=4"])).metrics
    tolerance = 0.0 if framework == "torch" else 1e-6
    for key, value in first.items():
        assert second[key] == pytest.approx(value, abs=tolerance, rel=0), key
    assert first["test_log_loss_mc"] != other["test_log_loss_mc"]


NO_NETWORK = """
import socket, sys
_connect = socket.socket.connect
def guarded(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
        raise OSError(f"network access attempted: {address}")
    return _connect(self, address)
socket.socket.connect = guarded
socket.create_connection = lambda address, *a, **k: (_ for _ in ()).throw(
    OSError(f"network access attempted: {address}"))
import runpy
sys.argv = ["train", *sys.argv[1:]]
runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
"""


def test_a_run_needs_no_network(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proxy = "http://127.0.0.1:9"  # anything that ignores the guard hits a closed port
    env = {**os.environ, "RDS_CACHE_DIR": str(tmp_path / "cache"), "HTTP_PROXY": proxy,
           "HTTPS_PROXY": proxy}
    out = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, *TINY_RT, "variant=naive", f"tracking.uri={store}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "network access attempted" not in out.stderr
    assert [r.info.status for r in children(store)] == ["FINISHED"]


def test_ctrl_c_on_a_parallel_sweep_leaves_no_run_running(tmp_path):
    from tests.support.cli import interrupt, start, wait_for

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    err = tmp_path / "stderr.txt"
    proc = start("-m", "sweep=smoke", "variant=none", "seed=0,1", "train.epochs=500",
                 "task.train_limit=256", "task.eval_limit=128", f"tracking.uri={store}",
                 f"hydra.sweep.dir={tmp_path / 's'}", err=err)
    wait_for(proc, err, "epoch 1/500", count=2)  # both jobs mid-run
    code = interrupt(proc)
    time.sleep(1)  # anything the resource trackers print at the launcher's exit
    text = err.read_text()
    assert code == 130, text[-3000:]
    assert "Traceback" not in text and "leaked" not in text
    said = [line for line in text.splitlines() if "interrupted" in line]
    assert len(said) == 1 and said[0] == text.strip().splitlines()[-1], text[-3000:]
    [parent] = runs(store, is_sweep_parent="true")
    assert parent.info.status == "KILLED" and parent.data.tags["failure_reason"]
    kids = children(store)
    assert len(kids) == 2
    for run in kids:
        assert run.info.status == "KILLED", run.data.tags
        assert run.data.tags["failure_reason"] and run.data.tags["completed"] == "false"


def test_a_killed_sweeps_parent_is_closed_by_the_rerun(tmp_path):
    from tests.support.cli import start, wait_for

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["-m", "sweep=smoke", "hydra/launcher=basic", "variant=none", "seed=0",
            "train.epochs=1,60", "task.train_limit=256", "task.eval_limit=128",
            f"tracking.uri={store}"]
    err = tmp_path / "stderr.txt"
    proc = start(*args, f"hydra.sweep.dir={tmp_path / 'a'}", err=err)
    # the 1-epoch job finished, the 60-epoch one is running: 60 tiny epochs outlast the poll
    # and the kill (with 12 they could all finish first on an idle machine)
    wait_for(proc, err, "epoch 1/60")
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of the whole sweep
    proc.wait(timeout=60)
    [old] = runs(store, is_sweep_parent="true")
    assert old.info.status == "RUNNING"

    rerun = run_cli(*args, f"hydra.sweep.dir={tmp_path / 'b'}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "[sweep] summary: 1 done, 1 skipped, 0 failed" in rerun.stderr  # only the killed one
    parents = {r.info.run_id: r for r in runs(store, is_sweep_parent="true")}
    new = next(r for r in parents.values() if r.info.run_id != old.info.run_id)
    old = parents[old.info.run_id]
    assert old.info.status == "KILLED" and new.info.status == "FINISHED"
    assert old.data.tags["superseded_by"] == new.info.run_id
    assert old.data.tags["sweep_key"] == new.data.tags["sweep_key"]
    redone = [r for r in children(store) if r.data.params["train.epochs"] == "60"]
    assert sorted(r.info.status for r in redone) == ["FINISHED", "KILLED"]
