"""`make ui` (experiments/ui.py) puts the user in front of the runs: a real store with a sweep
child nested under its parent and a plain run, the launcher on a free port under the network
guard, and the page it prints opened in headless Chromium. The run names, the framework /
variant / seed columns and the test metric must be on the rendered page (the bare `mlflow ui`
lands on the GenAI overview with "Traces 0" and none of them)."""

from __future__ import annotations

import contextlib
import html
import http.server
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from mlflow.tracking import MlflowClient

from experiments import tracking, tracking_store, ui
from experiments.run import execute
from tests.conftest import REPO, compose_cfg
from tests.support.cli import run_cli
from tests.support.netguard import blocked, guarded_env, installation_ids

# one xdist worker runs this module, so its module-scoped store is made once
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ui")]

TINY = ["task=rt", "model=tiny", "task.train_limit=256", "task.eval_limit=128", "train.epochs=1",
        "train.mc_samples=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """rt experiment: a sweep parent with one nested training run, and one plain training run."""
    tmp = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    tracking_store.ensure_store(uri)
    client = MlflowClient(uri)
    exp = tracking.experiment_id(client, "rt", uri)
    parent = client.create_run(exp, tags={"mlflow.runName": "sweep ui-test",
                                          "is_sweep_parent": "true"}).info.run_id
    child = execute(compose_cfg([*TINY, f"tracking.uri={uri}", "variant=none", "seed=0",
                                 f"tracking.parent_run_id={parent}"]))
    client.set_terminated(parent)
    plain = execute(compose_cfg([*TINY, f"tracking.uri={uri}", "variant=naive", "seed=1"]))
    # the child's GRU twin, named as the command line names it (run names carry the cell)
    gru = run_cli(*TINY, f"tracking.uri={uri}", "variant=none", "seed=0", "model.cell=gru",
                  f"tracking.parent_run_id={parent}", f"hydra.run.dir={tmp / 'hydra'}")
    assert gru.returncode == 0, gru.stderr[-3000:]
    twin = client.search_runs([exp], "params.`model.cell` = 'gru'")[0].info
    runs = [client.get_run(r.run_id) for r in (child, plain, twin)]
    assert runs[0].data.tags["mlflow.parentRunId"] == parent
    return {"tmp": tmp, "uri": uri, "exp": exp, "runs": runs}


def test_experiments_are_created_with_the_ui_tags(store):
    tags = MlflowClient(store["uri"]).get_experiment(store["exp"]).tags
    assert tags[ui.KIND_TAG] == "custom_model_development"
    view = json.loads(tags[ui.VIEW_TAG])
    assert {"tags.`framework`", "tags.`variant`", "tags.`seed`", "metrics.`test_accuracy_std`",
            "metrics.`test_accuracy_mc`", "params.`model.cell`", "tags.`preset`"} <= \
        set(view["selectedColumns"])
    assert view["orderByKey"] == "tags.`mlflow.runName`"  # not start time: children not nested


def test_runs_url_names_the_task_experiments():
    assert ui.runs_url("http://h:1", []) == "http://h:1/#/experiments?workflowType=machine_learning"
    one = ui.runs_url("http://h:1", ["3"])
    assert one.startswith("http://h:1/#/experiments/3/runs?workflowType=machine_learning&")
    assert "viewStateShareKey=runs-table" in one
    two = ui.runs_url("http://h:1", ["1", "2"])
    assert two.startswith("http://h:1/#/compare-experiments/s?experiments=%5B%221%22%2C%222%22%5D")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page_text(exe: str, url: str, profile) -> str:
    """The DOM after React rendered it (virtual time runs the app's timers and waits for its
    fetches), as plain text. A wide window: the grid only renders the columns in view."""
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           f"--user-data-dir={profile}", "--window-size=2400,1200",
           "--virtual-time-budget=30000", "--dump-dom", url]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=240).stdout
    dom = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


@pytest.fixture
def launcher(store, tmp_path):
    """`python -m experiments.ui` as `make ui` runs it, on a store whose experiment lost its UI
    tags (a store from before this launcher); yields (printed URL, guard log, HOME)."""
    client = MlflowClient(store["uri"])
    for key in (ui.KIND_TAG, ui.VIEW_TAG):
        client.delete_experiment_tag(store["exp"], key)
    env, log, home = guarded_env(tmp_path)
    port = _free_port()
    err = open(tmp_path / "ui.err", "w")  # noqa: SIM115 - closed in the finaliser
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.ui", "--tracking-uri", store["uri"], "--port",
         str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
        start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url, deadline = None, time.monotonic() + 300
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if m := re.search(r"(http://\S+)", line):
                url = m.group(1)
        assert url, f"no URL printed; stderr: {(tmp_path / 'ui.err').read_text()[-3000:]}"
        assert url.startswith(f"http://127.0.0.1:{port}/#/")
        yield url, log, home
    finally:
        # the launcher leads its own process group: mlflow ui and its uvicorn worker are in it
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        err.close()


def test_make_ui_opens_the_run_table(store, launcher, tmp_path):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("chromium is not installed but CI is set: the CI image must provide it "
                        "(apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); with CI=true "
                    "this test fails instead of skipping")
    url, log, home = launcher
    tags = MlflowClient(store["uri"]).get_experiment(store["exp"]).tags
    assert tags[ui.KIND_TAG] == ui.KIND and ui.VIEW_TAG in tags, "old store was not tagged"
    profile = tmp_path / "profile"
    profile.mkdir()
    text = _page_text(exe, url, profile)
    names = [r.info.run_name for r in store["runs"]]
    assert names == ["torch/none/rt/s0", "torch/naive/rt/s1", "torch/none/rt/s0/cell=gru"]
    missing = [n for n in names if n not in text]
    assert not missing, f"runs {missing} not on the page {url}: {text[:2000]}"
    # (the preset column shows where a run has the tag: none here)
    for header in ("framework", "variant", "model.cell", "seed", "test_accuracy_std",
                   "test_accuracy_mc"):
        assert header in text, f"column {header} not on the page: {text[:2000]}"
    for run in store["runs"]:
        value = run.data.metrics["test_accuracy_std"]
        assert repr(value) in text or f"{value:.4g}" in text, (value, text[:2000])
    assert "sweep ui-test" not in text, "the sweep parent should be filtered out of the runs"
    assert "No data available" not in text  # the GenAI overview's empty trace charts
    assert blocked(log) == [], f"the UI server tried to reach the network: {blocked(log)}"
    assert installation_ids(home) == [], "the UI server left an MLflow installation id behind"


class _Health(http.server.BaseHTTPRequestHandler):
    """Another server on the port: it answers /health as an MLflow server does."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args) -> None:
        pass


def _ui(uri: str, port: int, env: dict[str, str], err) -> subprocess.Popen:
    """`python -m experiments.ui` as `make ui` runs it, leading its own process group (a
    terminal's foreground job, so that a test can Ctrl-C it); SIGINT handled, as in a shell."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "experiments.ui", "--tracking-uri", uri, "--port", str(port)],
            cwd=REPO, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE, stderr=err,
            text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def _printed_url(proc: subprocess.Popen, timeout: float) -> str | None:
    """The URL the launcher prints once its server answers (None: it exited or timed out)."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(queue.Empty):
            if m := re.search(r"MLflow UI \(runs\): (http://\S+)", lines.get(timeout=1)):
                return m.group(1)
    return None


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL whatever is left of the launcher's process group (a test that failed)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_taken_port_is_refused_naming_its_holder(tmp_path):
    """Another server answering on the port used to get its URL printed as ours (and the launcher
    exited 0 once `mlflow ui` failed to bind): now one line naming the port and the holder, a
    non-zero exit, and the store is not even opened."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    env, _, _ = guarded_env(tmp_path)
    db = tmp_path / "mlflow.db"
    with open(tmp_path / "ui.err", "w") as err:
        proc = _ui(f"sqlite:///{db}", port, env, err)
        try:
            out, _ = proc.communicate(timeout=120)
        finally:
            server.shutdown()
            server.server_close()
            if proc.poll() is None:
                _stop_group(proc)
    lines = (tmp_path / "ui.err").read_text().strip().splitlines()
    assert proc.returncode != 0 and "http://" not in out, (proc.returncode, out, lines)
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], lines
    assert f"pid {os.getpid()}" in lines[0] and "PORT=" in lines[0], lines
    assert not db.exists()


def test_ctrl_c_on_make_ui_is_one_line_and_frees_the_port(tmp_path):
    env, _, _ = guarded_env(tmp_path)
    port = _free_port()
    err_path = tmp_path / "ui.err"
    with open(err_path, "w") as err:
        proc = _ui(f"sqlite:///{tmp_path / 'mlflow.db'}", port, env, err)
        try:
            assert _printed_url(proc, 300), err_path.read_text()[-3000:]
            time.sleep(1)  # the server's start-up lines are out
            before = len(err_path.read_text())
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal's whole foreground group
            code = proc.wait(timeout=60)
            time.sleep(1)  # anything a child prints after the launcher exited
        finally:
            if proc.poll() is None:
                _stop_group(proc)
    after = err_path.read_text()[before:].strip().splitlines()
    assert code == 130, (code, after)
    assert len(after) == 1 and "interrupted" in after[0], after
    with socket.socket() as s:  # nothing left listening: the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no listener
        s.bind(("127.0.0.1", port))
