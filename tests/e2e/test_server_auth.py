"""The tracking server of docs/CLUSTER.md lets no one in without a password: MLflow's basic-auth
app on a real `mlflow server` (127.0.0.1, a free port, stopped by PID), the admin's password
set (random) before the first start, the jobs' user and password in the environment variables
MLflow's client reads, never in the URI, on a command line or in a logged param.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from mlflow.tracking import MlflowClient

from experiments.tracking_store import CREDENTIAL_ENV, TrackingError, resolve_uri
from tests.support import cluster as C

# one xdist worker runs this module, so its module-scoped tracking server is made once
pytestmark = pytest.mark.xdist_group("auth_server")

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
ONE_JOB = ("variant=none", "seed=0")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[C.TrackingServer]:
    server = C.TrackingServer(tmp_path_factory.mktemp("auth-server"), auth=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _without_credentials() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in (*CREDENTIAL_ENV, "MLFLOW_TRACKING_URI")}


@pytest.mark.e2e
def test_an_unauthenticated_request_is_refused(server):
    status, body = server.request(SEARCH)
    assert status == 401, (status, body)
    assert server.request("/health")[0] == 200  # up, and open to health checks only


@pytest.mark.e2e
def test_a_wrong_password_is_refused_and_the_right_one_accepted(server):
    user, password = server.admin
    assert server.request(SEARCH, (user, password + "x"))[0] == 401
    assert server.request(SEARCH, (user, "password1234"))[0] == 401  # old MLflow's default
    assert server.request(SEARCH, (user, password))[0] == 200


@pytest.mark.e2e
def test_the_servers_secrets_are_in_private_files_not_on_its_command_line(server):
    for name in ("auth.ini", "server.env"):
        assert (server.root / name).stat().st_mode & 0o777 == 0o600, name
    procs = [psutil.Process(server.proc.pid), *psutil.Process(server.proc.pid).children(True)]
    env = dict(line.split("=", 1) for line in (server.root / "server.env").read_text().split())
    secrets = (server.admin[1], env["MLFLOW_FLASK_SERVER_SECRET_KEY"])
    for proc in procs:
        cmdline = " ".join(proc.cmdline())
        assert not any(s in cmdline for s in secrets), cmdline


@pytest.mark.e2e
def test_a_sweep_with_credentials_logs_normally_and_never_logs_them(server, tmp_path,
                                                                   monkeypatch):
    credentials = server.add_user("sweeps")
    sweep = tmp_path / "sweep"
    rc, out = C.finish(C.smoke_sweep(sweep, *ONE_JOB, f"tracking.uri={server.uri}",
                                     env={**_without_credentials(), **credentials}),
                       sweep.with_suffix(".log"))
    assert rc == 0, out[-3000:]
    assert "[sweep] summary: 1 done, 0 skipped, 0 failed" in out, out[-3000:]

    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient(server.uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps)
    [parent] = [r for r in runs if r.data.tags.get("is_sweep_parent") == "true"]
    [run] = [r for r in runs if r is not parent]
    assert parent.info.status == "FINISHED"
    assert run.info.status == "FINISHED" and run.data.tags["completed"] == "true"
    assert "test_accuracy_std" in run.data.metrics
    config = Path(client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path)))
    password = credentials[CREDENTIAL_ENV[1]]
    for logged in (run, parent):
        assert password not in f"{logged.data.params} {logged.data.tags}"
    assert password not in config.read_text() + out


@pytest.mark.e2e
@pytest.mark.parametrize("password", [None, "wrong"], ids=["no credentials", "wrong password"])
def test_a_sweep_without_valid_credentials_is_refused_before_anything_runs(server, tmp_path,
                                                                           password):
    env = _without_credentials()
    if password:
        env.update(dict(zip(CREDENTIAL_ENV, ("admin", password), strict=True)))
    sweep = tmp_path / "sweep"
    rc, out = C.finish(C.smoke_sweep(sweep, *ONE_JOB, f"tracking.uri={server.uri}", env=env),
                       sweep.with_suffix(".log"))
    refusals = [line for line in out.splitlines() if line.startswith("refused:")]
    assert rc == 2 and len(refusals) == 1, out[-3000:]
    assert f"tracking store '{server.uri}'" in refusals[0] and "401" in refusals[0]
    assert "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in refusals[0]
    assert not list(sweep.glob("*/result.json"))  # no job ran


def test_credentials_in_the_tracking_uri_are_refused_without_echoing_them():
    with pytest.raises(TrackingError) as e:
        resolve_uri("http://sweeps:s3cr3t-pw@127.0.0.1:5000")
    assert "tracking.uri=" in str(e.value) and "carries credentials" in str(e.value)
    assert "s3cr3t-pw" not in str(e.value) and "MLFLOW_TRACKING_PASSWORD" in str(e.value)
