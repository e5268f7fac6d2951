"""Section "Provenance": where the numbers came from. The store and filters, the launches a
`--sweep` report covers, then one table: runs, sweeps, seeds, commits, package versions,
machine, time span and this report's own build."""

from __future__ import annotations

import time
from collections import Counter

import pandas as pd

from experiments import tracking as T
from reports import markdown
from reports.sections import titles
from reports.sections.context import Context, Part, Section
from reports.store.load import StoreData
from reports.store.names import short_id, store_name

# Tags that describe the machine: those experiments/tracking.py logs, and others a future
# tracking layer may log; shown when present.
MACHINE_TAGS = (T.HOST, "hostname", "machine", "cpu", T.CPU_MODEL, "gpu", "gpu_name",
                "accelerator", "platform")


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """The store and filters, the launches a `--sweep` covers, then the table."""
    data, health = ctx.data, ctx.health
    items = rows(data.runs, health.usable, health.flagged, data.parents, data.uri, ctx.filters,
                 git_commit_or_unknown())
    return [_intro(data, ctx.filters), *_selection(data),
            markdown.table(pd.DataFrame(items, columns=["item", "value"]), text=True)]


def _intro(data: StoreData, filters: str) -> str:
    """The store (named without a machine path), the filters and how to regenerate."""
    return (f"Generated from the MLflow store `{store_name(data.uri)}` alone "
            f"({len(data.runs)} training runs{'; filters: ' + filters if filters else ''}). "
            "Regenerate with `make report` (options: `python -m reports.build --help`).")


def _selection(data: StoreData) -> list[str]:
    """With `--sweep`: every parent run (launch) of the sweep the report covers, by sweep id."""
    if not data.selected:
        return []
    parents = data.parents.set_index("run_id")
    chosen = [r for r in data.selected if r in parents.index]
    keys = sorted({str(parents.loc[r, "tags"].get(T.SWEEP_KEY) or "") for r in chosen} - {""})
    items = [f"sweep id `{parents.loc[r, T.SWEEP_ID] or '?'}`: parent run "
             f"`{short_id(r)}` ({parents.loc[r, 'experiment']}, {parents.loc[r, 'status']}"
             + (f", superseded by {short_id(parents.loc[r, 'tags'][T.SUPERSEDED_BY])}"
                if parents.loc[r, "tags"].get(T.SUPERSEDED_BY) else "") + ")"
             for r in chosen]
    launches = len({parents.loc[r, T.SWEEP_ID] or r for r in chosen})
    same = f" (sweep_key {', '.join(f'`{k}`' for k in keys)})" if keys else ""
    blocks = [f"The selected sweep covers {len(chosen)} parent run(s) from {launches} "
              f"launch(es){same}; the report includes the runs of all of them, oldest first:",
              markdown.bullets(items)]
    elsewhere = data.runs[~data.runs["parent_run_id"].isin(chosen)]
    if len(elsewhere):  # jobs a launch skipped: their config had completed in another sweep
        others = sorted({short_id(r) for r in elsewhere["parent_run_id"].dropna()})
        blocks.append(
            f"{len(elsewhere)} of its {len(data.runs)} runs were logged by other launches "
            "that ran the same configurations (this sweep's jobs, resumed by config hash)"
            + (f": parent run(s) {', '.join(f'`{o}`' for o in others)}." if others else "."))
    return blocks


def _counts(values) -> str:
    """Each distinct value with its number of runs, most frequent first."""
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
    """The commit of the report's code ("unknown" outside a git checkout)."""
    try:
        from experiments.tracking import git_commit

        return git_commit()
    except Exception:  # the report must work from a bare copy of reports/ too
        return "unknown"


SECTION = Section(titles.PROVENANCE, write)
