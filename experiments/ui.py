"""`make ui`: the MLflow UI, opened on the run table of the task experiments.

    python -m experiments.ui [--tracking-uri URI] [--host 127.0.0.1] [--port 5000]

Started bare, MLflow 3.17 lands on its GenAI overview ("Traces: 0"), with the runs behind the
"Model training" switch, sweep jobs collapsed under their parent run and no metric columns.
What its UI honours (read from mlflow/server/js/build/static/js, main.*.js and chunk 3878.*.js):

- URL parameter `workflowType=machine_learning`: the GenAI / Model training switch (otherwise
  read from the browser's localStorage `mlflow.workflowType`, default `genai`).
- URL parameter `viewStateShareKey=KEY`: the run table takes its state from the experiment tag
  `mlflow.sharedViewState.KEY` (plain JSON): search facets (`searchFilter`, `orderByKey`,
  `orderByAsc`, ...) and table state (`selectedColumns`, `columnOrder`, `columnWidths`,
  `groupBy`, ...; never `runsExpanded`). The browser's own saved view is kept ("Exit shared view").
- Child runs are nested, collapsed, under their parent only while the table is sorted by start
  time without a search filter: this view sorts by run name and shows training runs only.
- Experiment tag `mlflow.experimentKind` (`custom_model_development` = "Machine learning"): set for
  MLflow versions that read it; 3.17 derives the kind from the switch above instead.

Every task experiment (one holding training runs) gets both tags when it is created
(experiments/tracking.py `experiment_id`) and, for older stores, when this launcher starts. The
launcher checks that the port is free (else one line naming its holder, exit 2), starts `mlflow
ui` (one worker, GenAI job execution off, telemetry off) in its own session, waits until it
answers and prints the URL of the run table; Ctrl-C stops it with one line (exit 130).
Guarantees and limits: docs/STORE.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

from experiments import offline, tracking, tracking_store

KIND_TAG = "mlflow.experimentKind"
KIND = "custom_model_development"
VIEW_KEY = "runs-table"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
# every training run has a config hash; sweep parents do not
TRAINING_RUNS = f"tags.{tracking.CONFIG_HASH} LIKE '%'"
CELL_PARAM = "model.cell"  # a logged param (the flattened config); LSTM runs from before lack it


def _col(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"  # the UI's column key: attributes|params|metrics|tags.`name`


def view_state() -> dict:
    """The run table: training runs sorted by name (framework/variant/task/seed and the axes a
    sweep varies, run_names.run_name), flat, with the framework, variant, cell, preset and seed
    and every test metric (standard and MC) as columns."""
    from experiments.metrics import BEST_EPOCH, METRICS, MODES, TEST, key

    names = list(dict.fromkeys(m for kind in METRICS.values() for m in kind))
    tags = [(tracking.FRAMEWORK, 90), (tracking.VARIANT, 180)]
    metrics = [(key(TEST, m, s), 150) for m in names for s in MODES] + [(BEST_EPOCH, 100)]
    columns = [(_col("tags", k), w) for k, w in tags]
    columns += [(_col("params", CELL_PARAM), 70), (_col("tags", tracking.PRESET), 150),
                (_col("tags", tracking.SEED), 60)]
    columns += [(_col("metrics", k), w) for k, w in metrics]
    return {
        "searchFilter": f"tags.{tracking.VARIANT} LIKE '%'",
        "orderByKey": _col("tags", tracking.RUN_NAME),
        "orderByAsc": True,
        "selectedColumns": [c for c, _ in columns],
        "columnOrder": [c for c, _ in columns],
        "columnWidths": dict(columns),
    }


def experiment_tags() -> dict[str, str]:
    return {KIND_TAG: KIND, VIEW_TAG: json.dumps(view_state(), separators=(",", ":"))}


def prepare_store(uri: str) -> list[str]:
    """Give every task experiment of the store the UI tags it lacks; return their ids."""
    from mlflow.tracking import MlflowClient

    tracking_store.ensure_store(uri)
    client = MlflowClient(uri)
    wanted = experiment_tags()
    ids = []
    for exp in client.search_experiments(max_results=1000):
        if not client.search_runs([exp.experiment_id], TRAINING_RUNS, max_results=1):
            continue
        ids.append(exp.experiment_id)
        tracking.set_experiment_tags(client, exp.experiment_id,
                                     {k: v for k, v in wanted.items() if exp.tags.get(k) != v})
    return sorted(ids, key=int) if all(i.isdigit() for i in ids) else sorted(ids)


def runs_url(base: str, experiment_ids: list[str]) -> str:
    """The run table of one experiment, of several side by side, or the experiment list."""
    query = {"workflowType": "machine_learning"}
    if not experiment_ids:
        return f"{base}/#/experiments?{urllib.parse.urlencode(query)}"
    query["viewStateShareKey"] = VIEW_KEY
    if len(experiment_ids) == 1:
        return f"{base}/#/experiments/{experiment_ids[0]}/runs?{urllib.parse.urlencode(query)}"
    query = {"experiments": json.dumps(experiment_ids, separators=(",", ":")), **query}
    return f"{base}/#/compare-experiments/s?{urllib.parse.urlencode(query)}"


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy
    try:
        with opener.open(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class PortTaken(OSError):
    """The UI's address cannot be bound; the message names it, who holds it and what to do."""


def check_port(host: str, port: int) -> None:
    """Bind the address as the server will, before anything starts: a port another server holds
    would otherwise answer our health check (its URL printed as ours, perhaps for another
    store) while `mlflow ui` fails to bind and exits 0."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as e:
            why = f"is taken by {_holder(port)}" if e.errno == errno.EADDRINUSE else \
                f"cannot be bound ({e.strerror})"
            raise PortTaken(f"--port {port}: {host}:{port} {why}; choose another port: "
                            f"make ui PORT={port + 1} (python -m experiments.ui --port "
                            f"{port + 1})") from None


def _holder(port: int) -> str:
    """The process listening on `port`, as `pid N (name)`, where this user may see it."""
    import psutil

    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections("inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port \
                    and conn.pid:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    return "another process"


def _die_with_parent() -> None:
    """In the server's process: SIGTERM when the launcher dies, even by kill -9 (Linux), so no
    orphaned server keeps the port."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _forward(stream, quiet: threading.Event) -> None:
    """Copy the server's output to stderr until the launcher stops it: its shutdown lines (and a
    worker's traceback) would bury the one line that says why it stopped."""
    for line in stream:
        if not quiet.is_set():
            sys.stderr.write(line)
            sys.stderr.flush()


def serve(uri: str, host: str, port: int, workers: int, wait_s: float) -> int:
    if urllib.parse.urlparse(uri).scheme in ("http", "https"):  # a tracking server serves its UI
        print(f"MLflow UI (runs): {runs_url(uri.rstrip('/'), prepare_store(uri))}", flush=True)
        return 0
    check_port(host, port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"
    url = runs_url(base, prepare_store(uri))
    env = offline.apply(dict(os.environ))
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # GenAI jobs; saves a process per UI
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
           "--port", str(port), "--workers", str(workers)]
    print(f"starting MLflow UI for {uri} on {base} ...", file=sys.stderr, flush=True)
    # its own session: Ctrl-C reaches the launcher only, which stops the server quietly
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, preexec_fn=_die_with_parent)
    quiet = threading.Event()
    threading.Thread(target=_forward, args=(proc.stdout, quiet), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        return _wait(proc, base, url, wait_s)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop
        quiet.set()
        _stop(proc)
        print(f"interrupted (Ctrl-C): MLflow UI on {base} stopped", file=sys.stderr, flush=True)
        return 130
    finally:
        quiet.set()
        _stop(proc)


def _wait(proc: subprocess.Popen, base: str, url: str, wait_s: float) -> int:
    """Print the URL once our server answers; then serve until it exits."""
    deadline = time.monotonic() + wait_s
    while not _answers(base):
        if proc.poll() is not None:
            print(f"MLflow UI exited ({proc.returncode}) before it answered on {base}",
                  file=sys.stderr)
            return proc.returncode or 1
        if time.monotonic() > deadline:
            print(f"MLflow UI did not answer within {wait_s:.0f} s", file=sys.stderr)
            return 1
        time.sleep(0.5)
    print(f"MLflow UI (runs): {url}", flush=True)
    return proc.wait()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # `mlflow ui` forwards it to its uvicorn workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.ui", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", default=None,
                   help=f"store (default {tracking_store.DEFAULT_URI_HELP})")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the server")
    args = p.parse_args(argv)
    try:
        uri = tracking_store.resolve_uri(args.tracking_uri)
        return serve(uri, args.host, args.port, args.workers, args.wait)
    except (tracking_store.TrackingError, PortTaken) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # while the store was prepared: nothing was started yet
        print("interrupted (Ctrl-C) before the MLflow UI started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
