"""A thin layer over MLflow with the one naming scheme the report depends on.

Metrics: `train_loss`, `lr`, `epoch_seconds`, `train_tokens_per_s`, `eval_seconds`,
`valid_<metric>_std` per epoch (step = epoch), `valid_<metric>_mc` every `train.mc_every`
epochs and always at the best epoch, and once at the end (step = best epoch) `best_epoch`,
`epochs_run` (fewer than `train.epochs` after an early stop), `test_<metric>_std|mc`.
Tags: `task`, `framework`, `variant`, `seed`, `config_hash`, `select_on` (the validation metric
that picked the best epoch), `preset` (when one was chosen), `completed` ("true" only after
everything was logged), `failure_reason`, `<package>_version`, `slurm_job_id` (and the array
ids) on a SLURM cluster. Sweep parents: `sweep_id`,
`sweep_preset`, `is_sweep_parent`, `primary_comparisons` (the preset's `study.primary`, one
per line), `sweep_key` (the sweep's identity: a hash of its jobs' config hashes), `pid`, `host`;
a parent a killed sweep left RUNNING is closed KILLED with `superseded_by` by the rerun.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPLETED = "completed"
SELECT_ON = "select_on"
PRESET = "preset"
PRIMARY = "primary_comparisons"
SWEEP_KEY = "sweep_key"


def preset_tag() -> dict[str, str]:
    """{"preset": name} when the run composed a `preset=...` (Hydra runs and sweep jobs)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    name = HydraConfig.get().runtime.choices.get("preset")
    return {PRESET: name} if name and name != "null" else {}


class TrackingError(ValueError):
    """A tracking URI that cannot be used; the message says which and why."""


def default_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO / 'results' / 'mlflow.db'}"


def resolve_uri(uri: str | None) -> str:
    """Check a tracking URI before any training: a malformed one or an unreachable server is an
    error now, not after an hour of training."""
    uri = uri or default_uri()
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme == "sqlite":
        path = uri.removeprefix("sqlite:///")
        if not path or path == uri:
            raise TrackingError(f"tracking.uri={uri!r} is malformed; use sqlite:////abs/path.db")
        _make_store_folder(uri, Path(path).parent)
    elif scheme in ("http", "https"):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).close()
        except (urllib.error.URLError, OSError) as e:
            raise TrackingError(f"tracking.uri={uri!r} is unreachable: {e}") from None
    elif scheme in ("file", ""):
        if not uri:
            raise TrackingError("tracking.uri is empty")
    else:
        raise TrackingError(
            f"tracking.uri={uri!r} has unsupported scheme {scheme!r}; "
            "allowed: sqlite:///path, http(s)://host:port, file:///path"
        )
    return uri


def _make_store_folder(uri: str, folder: Path) -> None:
    """Create a store's folder only under results/; elsewhere the folder must exist (a typo
    in an absolute path must not build a tree at /)."""
    folder = folder.resolve()
    results = (REPO / "results").resolve()
    if folder.is_dir():
        return
    if folder.is_relative_to(results):
        folder.mkdir(parents=True, exist_ok=True)
        return
    raise TrackingError(f"tracking.uri={uri!r}: folder {folder} does not exist; create it "
                        "first (only folders under results/ are created for you)")


def ensure_store(uri: str) -> None:
    """Create the store's schema once; a fresh SQLite file crashes under parallel first writes,
    so sweeps call this in the launching process before any job starts. A store that cannot be
    opened or written (corrupt, read-only) is one line naming it, not three chained tracebacks."""
    from mlflow.tracking import MlflowClient

    with store_errors(uri):
        MlflowClient(uri).search_experiments(max_results=1)


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn a store that cannot be opened or written (corrupt, read-only, locked) into one
    line naming it, instead of three chained SQLAlchemy tracebacks."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - SQLAlchemy/alembic/MLflow errors alike
        raise TrackingError(f"tracking store {uri!r} cannot be used: {_root_cause(e)}") from None


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def experiment_id(client, name: str, uri: str) -> str:
    """Get or create the experiment; artifacts of a SQLite store live beside the database."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        location = (db.parent / "artifacts" / name).as_uri()
    from experiments.ui import experiment_tags  # the UI's "Machine learning" kind and run table

    try:
        return client.create_experiment(name, artifact_location=location, tags=experiment_tags())
    except Exception:  # a parallel job created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def find_completed(client, exp_id: str, config_hash: str):
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.config_hash = '{config_hash}' and tags.{COMPLETED} = 'true'",
        max_results=1,
    )
    return runs[0] if runs else None


def supersede_unfinished(client, exp_id: str, config_hash: str, new_run_id: str) -> None:
    """Mark earlier runs of the same config that never completed (killed, crashed) as KILLED
    and point them to the run that redoes them, so they never look like results."""
    runs = client.search_runs(
        [exp_id], filter_string=f"tags.config_hash = '{config_hash}' and tags.{COMPLETED} != 'true'"
    )
    for run in runs:
        if run.info.run_id == new_run_id:
            continue
        client.set_tag(run.info.run_id, "superseded_by", new_run_id)
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, "KILLED")


def supersede_stale_parents(client, exp_id: str, sweep_key: str, new_run_id: str) -> list[str]:
    """Close the parents of earlier runs of the same sweep (same `sweep_key`) that are still
    RUNNING because their launching process was killed (kill -9, a lost node): KILLED and
    pointed to the new parent, as `supersede_unfinished` does for runs. A parent whose launching
    process still runs on this machine (the same grid launched twice) is left alone."""
    runs = client.search_runs([exp_id], filter_string=f"tags.{SWEEP_KEY} = '{sweep_key}' and "
                              "attributes.status = 'RUNNING'")
    closed = []
    for run in runs:
        if run.info.run_id == new_run_id or _launcher_alive(run):
            continue
        client.set_tag(run.info.run_id, "superseded_by", new_run_id)
        client.set_tag(run.info.run_id, "failure_reason",
                       "never closed: its sweep was killed; a rerun of the sweep superseded it")
        client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed


def _launcher_alive(run) -> bool:
    """Whether the process that opened this parent still runs here (not a reused pid: a live
    launcher was started before its parent run)."""
    import psutil

    tags = run.data.tags
    if tags.get("host") != platform.node() or not tags.get("pid", "").isdigit():
        return False
    try:
        proc = psutil.Process(int(tags["pid"]))
        return proc.status() != psutil.STATUS_ZOMBIE and \
            proc.create_time() * 1000 <= run.info.start_time
    except psutil.Error:
        return False


def package_versions(framework: str) -> dict[str, str]:
    names = ["mlflow", "numpy", "hydra-core"]
    names += ["torch"] if framework == "torch" else ["tensorflow-cpu", "tensorflow", "keras"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def machine_tags() -> dict[str, str]:
    """Where a run ran, so the report can tell timings from different machines apart."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": platform.node(), "cpu_model": model, "cpu_count": str(os.cpu_count())}


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
