"""The command line as a user runs it: `python -m experiments.train` in a subprocess from the
repository root (`run_cli`, or `start` for one to interrupt with Ctrl-C), and the runs a store
holds (`runs`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import REPO


def run_cli(*overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "experiments.train", *overrides],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def runs(store: str, **filters: str):
    client = MlflowClient(store)
    exps = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(exps, max_results=1000)
    return [r for r in found if all(r.data.tags.get(k) == v for k, v in filters.items())]


def start(*overrides: str, err: Path) -> subprocess.Popen:
    """`python -m experiments.train` in its own process group (a terminal's foreground job), its
    stderr to a file so a test can wait for a line and read the rest afterwards. A terminal's job
    takes Ctrl-C even when the tests themselves were started in the background (`make test &`
    ignores SIGINT, and an ignored signal stays ignored across exec), so the child is started
    with SIGINT handled; a handler, unlike SIG_IGN, resets to the default at exec."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "experiments.train", *overrides], cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL,
            stderr=err.open("w"), start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)


def wait_for(proc: subprocess.Popen, err: Path, needle: str, count: int = 1,
             timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while err.read_text().count(needle) < count:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"never saw {count} x {needle!r}:\n{err.read_text()[-3000:]}")
        time.sleep(0.3)


def interrupt(proc: subprocess.Popen) -> int:
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
