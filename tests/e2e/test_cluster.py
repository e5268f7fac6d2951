"""Scale-out, proven on a real SLURM cluster and a real MLflow tracking server (marker `cluster`).

The module's fixture brings up, on 127.0.0.1 only, a one-node SLURM cluster from Debian's
packages (munged, slurmctld, slurmd; tests/support/cluster.py writes its slurm.conf into a temporary
folder) and the authenticated `mlflow server` of docs/CLUSTER.md (basic-auth app; SQLite store,
users and artifact root in that folder, artifacts served through the server; the jobs log as a
`sweeps` user whose credentials they inherit), and stops them by PID at the end, also when a
test fails. The sweeps are
the commands of docs/CLUSTER.md: `make sweep PRESET=smoke ARGS="<LAUNCH> ..."`
expands to `python -m experiments.train --multirun sweep=smoke <LAUNCH> ...`, which is what
runs here (make itself would reinstall .venv whenever pyproject.toml is newer than its stamp),
with MLFLOW_TRACKING_URI=http://127.0.0.1:<port> and SLURM_CONF in the environment.

Needs root and `apt-get install slurmctld slurmd slurm-client munge` (.ci/run does both);
elsewhere run the rest of the suite with `-m "not cluster"`. About 4-5 minutes on 2 cores.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.support import cluster as C

# one xdist worker: one cluster at a time (its daemons, munged's key), made once per run
pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.xdist_group("cluster")]

# The launcher overrides of docs/CLUSTER.md's example: the `slurm` launcher, the test
# cluster's partition, one core and 1 GB per job (train.threads = cpus_per_task).
LAUNCH = ("hydra/launcher=slurm hydra.launcher.partition=debug hydra.launcher.cpus_per_task=1 "
          "hydra.launcher.mem_gb=1 hydra.launcher.timeout_min=10 train.threads=1")
SMOKE = "variant=none seed=0,1"
SWEEP_TIMEOUT = 420


class Site:
    """The running cluster and tracking server, and how to launch a sweep on them."""

    def __init__(self, root: Path, slurm: C.Slurm, server: C.TrackingServer):
        self.root, self.slurm, self.server = root, slurm, server
        self.client = MlflowClient(server.uri)

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.slurm.env, "MLFLOW_TRACKING_URI": self.server.uri,
                "RDS_CACHE_DIR": str(self.root / "cache"), "PYTHONUNBUFFERED": "1", **extra}

    def start(self, name: str, *overrides: str, **env: str) -> Sweep:
        """`make sweep PRESET=smoke ARGS="<LAUNCH> <overrides>"`, in the background."""
        log = self.root / f"{name}.log"
        argv = [sys.executable, "-m", "experiments.train", "--multirun", "sweep=smoke",
                *LAUNCH.split(), *overrides, f"hydra.sweep.dir={self.root / name}"]
        with log.open("w") as out:
            proc = subprocess.Popen(argv, cwd=REPO, env=self.env(**env), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        return Sweep(self, name, proc, log)

    def run(self, name: str, *overrides: str) -> Sweep:
        sweep = self.start(name, *overrides)
        sweep.wait()
        return sweep


class Sweep:
    def __init__(self, site: Site, name: str, proc: subprocess.Popen, log: Path):
        self.site, self.name, self.proc, self.log = site, name, proc, log
        self.dir = site.root / name

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")

    @functools.cached_property
    def id(self) -> str:
        """The sweep id the launching process printed (tag `sweep_id` of its runs)."""
        found = C.wait_until(lambda: re.search(r"^\[sweep (\S+)\] \d+ jobs", self.text, re.M)
                             or self.proc.poll() is not None, 120, "the sweep's first line",
                             [self.log])
        assert found is not True, f"the sweep ended before it started:\n{C.tail(self.log)}"
        return found.group(1)

    def wait(self, timeout: float = SWEEP_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            C.stop(self.proc)
            raise AssertionError(f"sweep {self.name} still running after {timeout:.0f}s; "
                                 f"SLURM queue {self.site.slurm.jobs()}\n{C.tail(self.log)}\n"
                                 f"{self.job_logs()[-3000:]}") from None

    def runs(self, parents: bool = False) -> list:
        client = self.site.client
        exps = [e.experiment_id for e in client.search_experiments()]
        found = client.search_runs(exps, f"tags.sweep_id = '{self.id}'", max_results=1000)
        return [r for r in found if (r.data.tags.get("is_sweep_parent") == "true") == parents]

    def job_logs(self) -> str:
        """What the SLURM jobs wrote (submitit's per-job stdout/stderr files)."""
        return "".join(p.read_text(errors="replace")
                       for p in sorted(self.dir.glob(".submitit/*/*_log.*")))

    def results(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("*/result.json"))]

    def summary(self) -> str:
        lines = [line for line in self.text.splitlines() if line.startswith("[sweep] summary")]
        assert len(lines) == 1, f"no summary:\n{C.tail(self.log)}"
        return lines[0]


@pytest.fixture(scope="module")
def site(request):
    missing = C.missing_tools()
    if missing or os.geteuid() != 0:
        pytest.fail(f"the cluster test needs root and Debian's slurmctld slurmd slurm-client munge "
                    f"(missing: {missing or 'root'}); .ci/run installs them, or deselect it with "
                    f"-m 'not cluster'")
    root = C.make_root()
    slurm = C.Slurm(root)
    server = C.TrackingServer(root / "server", auth=True)  # docs/CLUSTER.md's server
    (root / "server").mkdir()
    failed = request.session.testsfailed
    mp = pytest.MonkeyPatch()
    try:
        slurm.start()
        server.start()
        for name, value in server.add_user("sweeps").items():  # the jobs' user, inherited
            mp.setenv(name, value)
        yield Site(root, slurm, server)
    finally:
        mp.undo()
        slurm.stop()  # scancel what is left, then slurmd, slurmctld, munged
        server.stop()
        if request.session.testsfailed == failed:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"\ncluster folder kept for inspection: {root}", file=sys.stderr)


@pytest.fixture(scope="module")
def smoke(site):
    """docs/CLUSTER.md's example: the smoke grid (variant none, seeds 0 and 1) as SLURM jobs."""
    start = time.time()
    sweep = site.run("a", *SMOKE.split())
    sweep.seconds = time.time() - start
    return sweep


def test_the_cluster_guide_gives_the_commands_this_test_runs():
    guide = (REPO / "docs" / "CLUSTER.md").read_text()
    assert f'make sweep PRESET=smoke ARGS="{LAUNCH} {SMOKE}"' in guide
    assert "make report" in guide and "MLFLOW_TRACKING_URI=http://" in guide
    assert "/etc/munge/munge.key" in guide
    # the server of the guide is the authenticated one this test starts
    assert "--app-name basic-auth" in guide and "--env-file" in guide
    assert "0.0.0.0" not in guide.replace("never `--host 0.0.0.0`", "")
    for line in C.AUTH_INI.splitlines():
        assert "{" in line or line in guide, line  # {placeholders}: paths and secrets


def test_every_job_ran_as_a_slurm_job_and_landed_finished_in_the_server(site, smoke):
    assert smoke.proc.returncode == 0, C.tail(smoke.log)
    assert smoke.summary().startswith("[sweep] summary: 2 done, 0 skipped, 0 failed")
    assert "Submitit 'slurm' sweep output dir" in smoke.text  # the slurm launcher, not another

    [parent] = smoke.runs(parents=True)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep_finished"] == "2"
    runs = smoke.runs()
    assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1"]
    for run in runs:
        tags = run.data.tags
        assert run.info.status == "FINISHED" and tags["completed"] == "true"
        assert tags["mlflow.parentRunId"] == parent.info.run_id  # nested under the sweep
        assert "test_accuracy_std" in run.data.metrics
        # the run ran inside the SLURM job its tags name: submitit's folder for that array task
        # holds the job's own log, which ends with this run's id
        task = f"{tags['slurm_array_job_id']}_{tags['slurm_array_task_id']}"
        job = smoke.dir / ".submitit" / task
        log = "".join(p.read_text() for p in job.glob("*_log.err"))
        assert f"FINISHED: run {run.info.run_id}" in log, (job, log[-2000:])
        assert tags["slurm_job_id"].isdigit()
    assert len({r.data.tags["slurm_job_id"] for r in runs}) == 2  # two jobs, not one
    assert {r.data.tags["slurm_array_task_id"] for r in runs} == {"0", "1"}

    # artifacts went through the server (mlflow-artifacts:/ URIs) into its artifact root
    for run in runs:
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
        local = site.client.download_artifacts(run.info.run_id, "config.yaml",
                                               str(site.root / f"dl-{run.info.run_id}"))
        config = yaml.safe_load(Path(local).read_text())
        assert config["seed"] == int(run.data.tags["seed"])
        stored = list((site.root / "server" / "artifacts").glob(f"*/{run.info.run_id}/"
                                                                  "artifacts/config.yaml"))
        assert len(stored) == 1
    print(f"\nsmoke sweep on SLURM: {smoke.seconds:.0f}s wall", file=sys.stderr)


def test_make_report_reads_the_servers_store(site, smoke):
    """`MLFLOW_TRACKING_URI=http://... make report ARGS="--sweep <id>"`, as docs/CLUSTER.md says."""
    out = subprocess.run(
        [sys.executable, "-m", "reports.build", "--sweep", smoke.id, "--out",
         str(site.root / "report")],
        cwd=REPO, env=site.env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "report: 2 runs" in out.stdout + out.stderr, out.stdout + out.stderr
    assert (site.root / "report" / "report.md").is_file()


def test_scancel_mid_run_is_killed_reported_and_alone_rerun(site):
    """`scancel` one job mid-run: its run ends KILLED with the reason, the summary says so, and
    rerunning the same sweep reruns only that config (resume by config hash via the server)."""
    grid = ("variant=naive", "seed=0", "train.epochs=2,20")  # the 20-epoch job gets cancelled
    sweep = site.start("b", *grid)
    sweep_id = sweep.id

    def victim():
        for run in sweep.runs():
            if run.data.params.get("train.epochs") == "20" and run.info.status == "RUNNING" \
                    and site.client.get_metric_history(run.info.run_id, "train_loss"):
                return run  # mid-run: epoch 1 logged
        assert sweep.proc.poll() is None, f"sweep ended first:\n{C.tail(sweep.log)}"
        return None

    run = C.wait_until(victim, 300, "the 20-epoch run's first epoch", [sweep.log], every=0.5)
    job_id = run.data.tags["slurm_job_id"]
    # an array task by <array job>_<task>: SLURM gives the array's own id to one of its tasks,
    # and `scancel <that id>` would cancel the whole array
    site.slurm.run("scancel", f"{run.data.tags['slurm_array_job_id']}_"
                              f"{run.data.tags['slurm_array_task_id']}")
    assert sweep.wait() == 1, C.tail(sweep.log)  # a job failed
    assert sweep.summary().startswith("[sweep] summary: 1 done, 0 skipped, 1 failed")
    [failed] = [r for r in sweep.results() if r["status"] == "FAILED"]
    assert "train.epochs=20" in failed["name"] and "killed by SIGTERM" in failed["reason"]
    assert f"  FAILED {failed['name']}: killed by SIGTERM" in sweep.text
    killed = site.client.get_run(run.info.run_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["failure_reason"] == "SystemExit: killed by SIGTERM (exit 143)"
    assert killed.data.tags["completed"] == "false"
    [parent] = sweep.runs(parents=True)
    assert parent.info.status == "FAILED" and parent.data.tags["sweep_failed"] == "1"
    C.wait_until(lambda: not site.slurm.jobs(), 120, "the cancelled job to leave the queue")

    again = site.run("b2", *grid)
    assert again.proc.returncode == 0, C.tail(again.log)
    assert again.summary().startswith("[sweep] summary: 1 done, 1 skipped, 0 failed")
    [redo] = again.runs()  # only the cancelled config ran again
    assert redo.data.params["train.epochs"] == "20"
    assert redo.info.status == "FINISHED" and redo.data.tags["completed"] == "true"
    assert redo.data.tags["slurm_job_id"] != job_id
    killed = site.client.get_run(run.info.run_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["superseded_by"] == redo.info.run_id
    assert sweep_id != again.id


def _kill_job_process(task: str) -> int:
    """SIGKILL the training process of array task `task` of the running sweep, as the kernel's
    out-of-memory killer would (submitit's python under srun: it never writes a result)."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "submitit.core._submit" in " ".join(proc.info["cmdline"] or []) and \
                    proc.environ().get("SLURM_ARRAY_TASK_ID") == task:
                proc.kill()
                return proc.pid
        except psutil.Error:
            continue
    return 0


def test_a_job_killed_before_its_run_opens_is_reported_failed_instead_of_waited_on(site):
    """A job SIGKILLed as it starts leaves no result; this cluster has no accounting (sacct
    fails), where submitit alone waits forever. The launcher sees the job gone from the queue
    (squeue) without a result, and the sweep reports it FAILED and ends, exit 1."""
    sweep = site.start("e", "variant=none", "seed=5,6", "hydra.launcher.gone_after_s=5")
    sweep.id  # noqa: B018
    C.wait_until(lambda: _kill_job_process("1"), 300, "array task 1's process", [sweep.log],
                 every=0.1)
    assert sweep.wait(timeout=240) == 1, C.tail(sweep.log)
    assert sweep.summary().startswith("[sweep] summary: 1 done, 0 skipped, 1 failed")
    [failed] = [r for r in sweep.results() if r["status"] == "FAILED"]
    assert "seed=6" in failed["name"] and "left the queue without a result" in failed["reason"]
    assert f"  FAILED {failed['name']}: SLURM job " in sweep.text
    [parent] = sweep.runs(parents=True)
    assert parent.info.status == "FAILED" and parent.data.tags["sweep_failed"] == "1"


def _history_complete(site: Site, run, epochs: int) -> None:
    steps = [m.step for m in site.client.get_metric_history(run.info.run_id,
                                                            "valid_accuracy_std")]
    assert sorted(steps) == list(range(1, epochs + 1)), (run.info.run_id, steps)
    assert {"test_accuracy_std", "test_accuracy_mc"} <= set(run.data.metrics)


def test_a_short_server_outage_mid_sweep_is_ridden_out_by_the_client_retries(site):
    """Stop the tracking server for a few seconds while the jobs train: MLflow's HTTP client
    retries (urllib3 Retry, MLFLOW_HTTP_REQUEST_MAX_RETRIES=7 with backoff 0, 4, 8, 16, ... s),
    so every run still lands FINISHED with every epoch logged."""
    epochs = 10
    sweep = site.start("c", "variant=none", "seed=2,3", f"train.epochs={epochs}")
    sweep.id  # noqa: B018 - the launching process is up and has opened its parent run

    def both_started():  # and one with epochs left to log, so that the outage is met
        runs = sweep.runs()
        assert sweep.proc.poll() is None, f"sweep ended first:\n{C.tail(sweep.log)}"
        return len(runs) == 2 and any(
            r.info.status == "RUNNING" and len(site.client.get_metric_history(
                r.info.run_id, "train_loss")) <= epochs - 4 for r in runs)

    C.wait_until(both_started, 300, "both runs open, one mid-run", [sweep.log], every=0.3)
    down = time.time()
    site.server.stop()
    time.sleep(3)
    site.server.start()
    outage = time.time() - down
    assert sweep.wait() == 0, C.tail(sweep.log) + sweep.job_logs()[-3000:]
    assert sweep.summary().startswith("[sweep] summary: 2 done, 0 skipped, 0 failed")
    runs = sweep.runs()
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["completed"] == "true"
        _history_complete(site, run, epochs)
    # the outage was met, and ridden out by retries: urllib3 logs every retry it makes
    assert "Retrying (Retry(total=" in sweep.job_logs(), sweep.job_logs()[-3000:]
    print(f"\nserver outage of {outage:.1f}s ridden out", file=sys.stderr)


def test_an_outage_beyond_the_retry_budget_fails_the_job_clearly_and_the_rerun_redoes_it(site):
    """With the retry budget cut to one immediate retry, the same outage fails the job: the
    summary names the failed request, the run is never FINISHED (the server was down, so it
    stays RUNNING with completed=false), and the rerun supersedes it and redoes the config."""
    grid = ("variant=none", "seed=4", "train.epochs=20")
    # the jobs only (sbatch --export): the launching process keeps the default budget, as it
    # closes the parent run through the server right after the job gave up
    budget = "ALL,MLFLOW_HTTP_REQUEST_MAX_RETRIES=1,MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1"
    sweep = site.start("d", *grid, f"++hydra.launcher.additional_parameters.export='{budget}'")
    sweep.id  # noqa: B018

    def training():
        assert sweep.proc.poll() is None, f"sweep ended first:\n{C.tail(sweep.log)}"
        runs = [r for r in sweep.runs() if r.info.status == "RUNNING"]
        return runs and site.client.get_metric_history(runs[0].info.run_id, "train_loss") \
            and runs[0]

    run = C.wait_until(training, 300, "the run's first epoch", [sweep.log], every=0.5)
    site.server.stop()
    try:
        C.wait_until(sweep.results, 120, "the job to give up", [sweep.log], every=0.5)
    finally:
        site.server.start()
    assert sweep.wait() == 1, C.tail(sweep.log)
    assert sweep.summary().startswith("[sweep] summary: 0 done, 0 skipped, 1 failed")
    [result] = sweep.results()
    assert result["status"] == "FAILED"
    assert "API request to" in result["reason"] and "Max retries exceeded" in result["reason"]
    lost = site.client.get_run(run.info.run_id)
    assert lost.info.status == "RUNNING" and lost.data.tags["completed"] == "false"

    again = site.run("d2", *grid)
    assert again.proc.returncode == 0, C.tail(again.log)
    assert again.summary().startswith("[sweep] summary: 1 done, 0 skipped, 0 failed")
    [redo] = again.runs()
    _history_complete(site, redo, 20)
    lost = site.client.get_run(run.info.run_id)
    assert lost.info.status == "KILLED" and lost.data.tags["superseded_by"] == redo.info.run_id


def test_mlflow_client_retry_budget(monkeypatch):
    """What the MLflow client's retry gives (mlflow/utils/request_utils.py, urllib3 Retry over
    every method, connect/read errors and 429/500/502/503/504): the defaults, and a dead server
    answered by an MlflowException naming the request once the retries are spent."""
    from mlflow import environment_variables as E
    from mlflow.exceptions import MlflowException

    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    assert (E.MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), E.MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(),
            E.MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get(), E.MLFLOW_HTTP_REQUEST_TIMEOUT.get()) \
        == (7, 2, 1.0, 120)  # the numbers docs/CLUSTER.md quotes
    # urllib3 sleeps 0 before the first retry, then factor * 2**(n-1), at most 120 s:
    waits = [0] + [min(2 * 2 ** (n - 1), 120) for n in range(2, 8)]
    assert waits == [0, 4, 8, 16, 32, 64, 120] and sum(waits) == 244

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    port = C.free_port()  # nothing listens there
    start = time.time()
    with pytest.raises(MlflowException, match="Max retries exceeded") as e:
        MlflowClient(f"http://127.0.0.1:{port}").get_experiment("0")
    took = time.time() - start
    assert f"127.0.0.1:{port}" in str(e.value)
    assert 1.9 <= took < 30, took  # waits 0 + 2 s: the budget is spent, then a clear error
