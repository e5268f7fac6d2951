"""Where the numbers came from: store, sweeps, commits, package versions, machine, seeds."""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pandas as pd

from experiments import tracking as T

REPO = Path(__file__).resolve().parent.parent
# Tags that describe the machine: those experiments/tracking.py logs, and others a future
# tracking layer may log; shown when present.
MACHINE_TAGS = (T.HOST, "hostname", "machine", "cpu", T.CPU_MODEL, "gpu", "gpu_name",
                "accelerator", "platform")


def redact(uri: str) -> str:
    """A tracking URI without credentials (http://user:pass@host -> http://host)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri


def store_name(uri: str, repo: Path = REPO) -> str:
    """The store as a reader of the report should see it: never an absolute path of the machine
    that built it (the report is shared). A file store inside the repository is named relative
    to it (`sqlite:///results/mlflow.db`), one elsewhere by its file name only; a server by its
    URL without credentials."""
    uri = redact(uri)
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme in ("http", "https"):
        return uri
    if scheme == "sqlite" and uri.startswith("sqlite:///"):
        prefix, path = "sqlite:///", uri.removeprefix("sqlite:///")
    elif scheme in ("file", ""):  # a file store: shown as a plain path
        prefix, path = "", urllib.parse.urlsplit(uri).path if scheme else uri
    else:
        return uri
    if not os.path.isabs(path):
        return uri
    real, root = os.path.realpath(path), os.path.realpath(repo)
    if os.path.commonpath([real, root]) == root:
        return prefix + Path(os.path.relpath(real, root)).as_posix()
    return f"{prefix}<outside the repository>/{Path(path).name}"


def _counts(values) -> str:
    c = Counter(v for v in values if v not in (None, "") and not pd.isna(v))
    if not c:
        return "not logged"
    return ", ".join(f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in c.most_common())


def _when(ms) -> str:
    if ms is None or pd.isna(ms):
        return "?"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(ms) / 1000))


def rows(runs: pd.DataFrame, usable: pd.DataFrame, flagged: pd.DataFrame, parents: pd.DataFrame,
         uri: str, filters: str, report_commit: str) -> list[tuple[str, str]]:
    """(item, value) pairs for the provenance table."""
    import mlflow

    experiments = ", ".join(sorted(runs["experiment"].unique())) or "none"
    out = [("store", store_name(uri)), ("experiments", experiments),
           ("filters", filters or "none")]
    out.append(("runs", f"{len(runs)} training runs read: {len(usable)} used, {len(flagged)} "
                        f"flagged (see Run health); {len(parents)} sweep parent run(s)"))
    sweeps = runs[T.SWEEP_ID].fillna("(not in a sweep)")
    out.append(("sweeps", _counts(sweeps)))
    for task, g in usable.groupby("task"):
        seeds = sorted(int(s) for s in g["seed"].dropna().unique())
        out.append((f"seeds ({task})", ", ".join(map(str, seeds))))
    out.append(("git commit of runs", _counts(t.get(T.GIT_COMMIT) for t in runs["tags"])))
    packages = sorted({k for t in runs["tags"] for k in t if k.endswith(T.VERSION_SUFFIX)})
    for key in packages:
        out.append((key.removesuffix(T.VERSION_SUFFIX), _counts(t.get(key) for t in runs["tags"])))
    out.append(("device (train.device)", _counts(p.get("train.device") for p in runs["params"])))
    out.append(("threads per run", _counts(p.get(T.THREADS_PARAM) or p.get("train.threads")
                                           for p in runs["params"])))
    machine = [(k, _counts(t.get(k) for t in runs["tags"])) for k in MACHINE_TAGS
               if any(k in t for t in runs["tags"])]
    out += machine or [("machine", "not logged by the runs (no host/CPU/GPU tag); timings are "
                                   "comparable only among runs known to share a machine")]
    out.append(("run time span", f"{_when(runs['start_time'].min())} to "
                                 f"{_when(runs['end_time'].max())}" if len(runs) else "–"))
    out.append(("report", f"generated {time.strftime('%Y-%m-%d %H:%M:%S')} by reports.build at "
                          f"commit {report_commit}, MLflow {mlflow.__version__}"))
    return out


def git_commit_or_unknown() -> str:
    try:
        from experiments.tracking import git_commit

        return git_commit()
    except Exception:  # the report must work from a bare copy of reports/ too
        return "unknown"


def short_id(run_id: str) -> str:
    return run_id[:8] if isinstance(run_id, str) and re.fullmatch(r"[0-9a-f]{32}", run_id) \
        else str(run_id)
