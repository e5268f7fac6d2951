"""A full disk under the store fails what could not be written, in one line naming the store,
and damages nothing that completed: the SQLite store and its artifacts on a small tmpfs the test
mounts (root, as CI runs), filled while a sweep runs; the rerun after space was freed redoes
only what did not complete.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.support import cluster as C

pytestmark = pytest.mark.e2e
# three jobs in order: 2 epochs (completes before the disk fills), 6 (the disk fills after its
# first epoch), 3 (finds it full)
GRID = ("variant=none", "seed=0", "train.epochs=2,6,3")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mnt = tmp_path / "store"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=False)  # a straggler holds a file


def fill(folder: Path) -> Path:
    """A file that takes every free block of `folder`'s filesystem (written until ENOSPC, in
    ever smaller pieces down to one byte)."""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    finally:
        os.close(fd)
    return path


def integrity(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_full_store_fails_in_one_line_damages_nothing_and_the_rerun_redoes_the_rest(
        small_fs, tmp_path):
    db = small_fs / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    sweep = tmp_path / "sweep"
    proc = C.smoke_sweep(sweep, *GRID, f"tracking.uri={uri}", env=env)
    try:
        C.wait_until(lambda: "epoch 1/6:" in C.tail(sweep.with_suffix(".log")), 180,
                     "the second job's first epoch", [sweep.with_suffix(".log")], every=0.1)
        filler = fill(small_fs)
        rc, out = C.finish(proc, sweep.with_suffix(".log"))
    finally:
        C.stop(proc)
    assert rc == 1, out[-3000:]
    assert "[sweep] summary: 1 done, 0 skipped, 2 failed" in out, out[-3000:]
    full = f"tracking store '{uri}': no space left on its filesystem"
    failed = [line for line in out.splitlines() if line.startswith("  FAILED ")]
    assert len(failed) == 2 and all(full in line for line in failed), out[-3000:]
    assert "Traceback" not in out, out[-3000:]  # one line each, not a chained traceback
    assert integrity(db) == "ok"

    filler.unlink()
    client = MlflowClient(uri)
    [exp] = [e.experiment_id for e in client.search_experiments() if e.name == "rt"]
    [done] = client.search_runs([exp], "tags.completed = 'true'")
    assert done.data.params["train.epochs"] == "2" and done.info.status == "FINISHED"
    assert {"test_accuracy_std", "test_accuracy_mc"} <= set(done.data.metrics)
    assert len(client.get_metric_history(done.info.run_id, "valid_accuracy_std")) == 2
    config = Path(client.download_artifacts(done.info.run_id, "config.yaml", str(tmp_path)))
    assert "epochs: 2" in config.read_text()

    again = tmp_path / "again"
    rc, out = C.finish(C.smoke_sweep(again, *GRID, f"tracking.uri={uri}", env=env),
                       again.with_suffix(".log"))
    assert rc == 0, out[-3000:]
    assert "[sweep] summary: 2 done, 1 skipped, 0 failed" in out, out[-3000:]
    completed = client.search_runs([exp], "tags.completed = 'true'")
    assert sorted(r.data.params["train.epochs"] for r in completed) == ["2", "3", "6"]
    assert done.info.run_id in {r.info.run_id for r in completed}  # kept, not redone
    assert integrity(db) == "ok"
