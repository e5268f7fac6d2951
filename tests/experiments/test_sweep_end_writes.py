"""A sweep whose end-of-sweep writes fail is not a success: Hydra turns an exception raised in
a callback into a warning (exit 0), so the sweep says in its summary that the writes failed and
exits 1. Proven with a real `mlflow server` (127.0.0.1, a free port, stopped by PID) that goes
down after the sweep's job logged everything and before the launching process closes the
sweep's parent run.
"""

from __future__ import annotations

import os
import re
import signal

import pytest
from mlflow.tracking import MlflowClient

from tests.support import cluster as C

pytestmark = pytest.mark.e2e
ONE_JOB = ("variant=none", "seed=0")


def _parents(client: MlflowClient) -> list:
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, "tags.is_sweep_parent = 'true'", order_by=["start_time"])


def test_a_server_down_as_the_sweep_ends_fails_the_sweep_and_the_rerun_closes_its_parent(
        tmp_path):
    server = C.TrackingServer(tmp_path / "server")
    server.root.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # one immediate retry: the launching process gives up on the stopped server in seconds
    env.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="1", MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="0")
    # 40 tiny epochs: the job is still running when the test polls for it (3 could all end
    # before the first poll on an idle machine)
    overrides = (*ONE_JOB, "train.epochs=40", "hydra/launcher=parallel")
    server.start()
    sweep = tmp_path / "sweep"
    proc = C.smoke_sweep(sweep, *overrides, f"tracking.uri={server.uri}", env=env)
    try:
        client = MlflowClient(server.uri)

        def job_running() -> bool:  # the job is out of the launching process's hands
            assert proc.poll() is None, C.tail(sweep.with_suffix(".log"))
            exps = [e.experiment_id for e in client.search_experiments()]
            return bool(exps and client.search_runs(exps, "tags.completed = 'false'"))

        C.wait_until(job_running, 180, "the job's run", [sweep.with_suffix(".log")])
        os.kill(proc.pid, signal.SIGSTOP)  # the launcher waits here; its job trains on
        try:
            C.wait_until(lambda: list(sweep.glob("*/result.json")), 180, "the job's end",
                         [sweep.with_suffix(".log")])
            server.stop()
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        rc, out = C.finish(proc, sweep.with_suffix(".log"))
    finally:
        C.stop(proc)
        server.stop()
    assert rc == 1, out[-3000:]
    assert "[sweep] summary: 1 done, 0 skipped, 0 failed" in out, out[-3000:]
    [line] = [x for x in out.splitlines() if x.startswith("  end-of-sweep writes FAILED:")]
    assert f"1 parent run(s) not closed ({server.uri}: " in line and "RUNNING" in line, line

    server.start()  # the same store: the parent was left RUNNING, the job's run FINISHED
    try:
        [left] = _parents(client)
        assert left.info.status == "RUNNING"
        again = tmp_path / "again"
        rc, out = C.finish(C.smoke_sweep(again, *overrides, f"tracking.uri={server.uri}",
                                         env=env), again.with_suffix(".log"))
        assert rc == 0, out[-3000:]
        assert "[sweep] summary: 0 done, 1 skipped, 0 failed" in out, out[-3000:]
        assert re.search(r"closed 1 stale parent run\(s\) of this sweep", out), out[-3000:]
        closed, new = _parents(client)
        assert closed.info.run_id == left.info.run_id and closed.info.status == "KILLED"
        assert closed.data.tags["superseded_by"] == new.info.run_id
        assert new.info.status == "FINISHED"
    finally:
        server.stop()
