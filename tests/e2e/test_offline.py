"""Offline means offline: a training run, a sweep and the report, each in a subprocess under a
network guard (tests/support/netguard.py) with a fresh HOME and none of the variables that would
turn MLflow's telemetry off by themselves, make no lookup or connection beyond loopback and leave no
MLflow installation id (~/.config/mlflow/telemetry.json) behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.support.netguard import blocked, guarded_env, installation_ids

# one xdist worker runs this module, so its module-scoped guarded runs are made once
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("offline")]

TINY = ["task=rt", "model=tiny", "task.train_limit=256", "task.eval_limit=128", "train.epochs=1",
        "train.mc_samples=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the three entry points one after the other into one store; each with its own HOME
    and guard log, so a failure names the entry point."""
    tmp = tmp_path_factory.mktemp("offline")
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    steps = {
        "train": ["-m", "experiments.train", *TINY, f"tracking.uri={store}",
                  f"hydra.run.dir={tmp / 'hydra_run'}"],
        "sweep": ["-m", "experiments.train", "--multirun", "sweep=smoke", "seed=0", "variant=none",
                  f"tracking.uri={store}", f"hydra.sweep.dir={tmp / 'hydra_sweep'}"],
        "report": ["-m", "reports.build", "--tracking-uri", store, "--out", str(tmp / "report")],
    }
    out = {}
    for name, args in steps.items():
        env, log, home = guarded_env(tmp / name)
        proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
        out[name] = (proc, log, home)
    return out


@pytest.mark.parametrize("step", ["train", "sweep", "report"])
def test_entry_point_stays_offline(runs, step):
    proc, log, home = runs[step]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert blocked(log) == [], f"{step} tried to reach the network: {blocked(log)}"
    assert installation_ids(home) == [], f"{step} left an MLflow installation id behind"


def test_the_guard_blocks_and_records(tmp_path):
    """The guard itself works: a lookup of a public name is refused and recorded."""
    env, log, _ = guarded_env(tmp_path)
    code = "import socket\ntry:\n    socket.getaddrinfo('example.org', 443)\nexcept OSError:\n" \
           "    print('refused')\n"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "refused", proc.stderr
    assert blocked(log) and "example.org" in blocked(log)[0]
