"""Two processes creating the same new SQLite store at once (two sweeps started together): both
must get a complete store. MLflow creates the schema when the first client opens the file; two
first clients used to race, and one failed with `table latest_metrics already exists`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e

# Imports first, then "ready", then the store on "go" from stdin: the two schema creations start
# within a millisecond of each other instead of a Python start-up apart.
CREATE = """
import sys
from experiments import tracking_store
from experiments import tracking
from mlflow.tracking import MlflowClient
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
print("ready", flush=True)
sys.stdin.readline()
try:
    tracking_store.ensure_store(sys.argv[1])
except tracking_store.TrackingError as e:
    print(e, file=sys.stderr)
    sys.exit(1)
"""


def _start(uri: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.Popen([sys.executable, "-c", CREATE, uri], cwd=REPO, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _race(db: Path) -> list[tuple[int, str]]:
    """Both processes open the not yet existing store `db` together; (exit code, stderr) each."""
    procs = [_start(f"sqlite:///{db}") for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return [(proc.wait(timeout=120), proc.stderr.read()) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_two_processes_create_one_new_store_together(tmp_path):
    from mlflow.tracking import MlflowClient

    for attempt in range(3):  # the race was lost on the first attempt before the lock
        db = tmp_path / f"try{attempt}" / "mlflow.db"
        db.parent.mkdir()
        outcomes = _race(db)
        failed = [err.strip().splitlines()[-1:] for code, err in outcomes if code != 0]
        assert not failed, f"attempt {attempt}: {failed}"
        client = MlflowClient(f"sqlite:///{db}")  # a complete schema: a write and a read work
        exp = client.create_experiment("check")
        assert client.get_experiment(exp).name == "check"
