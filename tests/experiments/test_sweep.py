"""The smoke sweep through the real Hydra CLI and launchers into a temporary SQLite store."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.cli import run_cli, runs

# one xdist worker runs this module, so its module-scoped smoke sweep is made once
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("smoke_sweep")]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    first = run_cli("sweep=smoke", f"tracking.uri={store}", f"hydra.sweep.dir={tmp / 'a'}")
    return tmp, store, first


def test_smoke_sweep_lands_nested_finished_runs(smoke):
    tmp, store, first = smoke
    assert first.returncode == 0, first.stderr[-3000:]
    children = [r for r in runs(store) if r.data.tags.get("is_sweep_parent") != "true"]
    parents = runs(store, is_sweep_parent="true")
    assert len(parents) == 1 and len(children) == 4
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {(r.data.tags["variant"], r.data.tags["seed"]) for r in children} == {
        ("none", "0"), ("none", "1"), ("naive", "0"), ("naive", "1")}
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["sweep_finished"] == "4"
    assert {r.data.tags["mlflow.runName"] for r in children} >= {"torch/naive/rt/s1"}
    assert "[sweep] summary: 4 done, 0 skipped, 0 failed" in first.stderr
    # every job reported its wall time, from which the progress lines' ETA is made
    seconds = [json.loads(p.read_text())["seconds"] for p in (tmp / "a").glob("*/result.json")]
    assert len(seconds) == 4 and all(0 < s < 600 for s in seconds)
    assert "1/4 jobs done (0 skipped)" in first.stderr and "min elapsed, ETA " in first.stderr


def test_rerun_skips_every_completed_config(smoke):
    tmp, store, _ = smoke
    again = run_cli("sweep=smoke", f"tracking.uri={store}", f"hydra.sweep.dir={tmp / 'b'}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[sweep] summary: 0 done, 4 skipped, 0 failed" in again.stderr
    children = [r for r in runs(store) if r.data.tags.get("is_sweep_parent") != "true"]
    assert len(children) == 4


def test_mlflow_server_serves_the_sweep_with_parent_links(smoke):
    tmp, store, _ = smoke
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        exp = json.load(urllib.request.urlopen(
            f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=rt", timeout=10))
        body = json.dumps({"experiment_ids": [exp["experiment"]["experiment_id"]],
                           "max_results": 100}).encode()
        req = urllib.request.Request(f"{base}/api/2.0/mlflow/runs/search", data=body,
                                     headers={"Content-Type": "application/json"})
        found = json.load(urllib.request.urlopen(req, timeout=10))["runs"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in found]
    parent_ids = {r["info"]["run_id"] for r, t in zip(found, tags, strict=True)
                  if t.get("is_sweep_parent") == "true"}
    children = [t for t in tags if t.get("is_sweep_parent") != "true"]
    # one parent per sweep invocation (the first one and the all-skipped rerun)
    assert len(parent_ids) == 2 and len(children) == 4
    linked = {t["mlflow.parentRunId"] for t in children}
    assert len(linked) == 1 and linked <= parent_ids


def test_submitit_local_launcher_runs_two_jobs(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = run_cli("-m", "sweep=smoke", "hydra/launcher=submitit_local",
                  "hydra.launcher.tasks_per_node=1", "variant=none", "seed=0,1",
                  f"tracking.uri={store}",
                  f"hydra.sweep.dir={tmp_path / 's'}")
    assert out.returncode == 0, out.stderr[-3000:]
    children = [r for r in runs(store) if r.data.tags.get("is_sweep_parent") != "true"]
    assert sorted(r.data.tags["seed"] for r in children) == ["0", "1"]
    assert len(list(Path(tmp_path / "s").glob("*/result.json"))) == 2
