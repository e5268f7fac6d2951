"""Section "Run health": which runs are used, every run left out of the tables with the reason,
and each sweep's parent runs with their job counts and verdict (a sweep launched more than once
said in words)."""

from __future__ import annotations

import pandas as pd

from experiments import tracking as T
from reports import fmt, markdown
from reports.sections import titles
from reports.sections.context import Context, Part, Section
from reports.store.names import short_id


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """Runs used, the runs left out, then the sweeps."""
    return [_runs(ctx), *_flagged(ctx), *_sweeps(ctx.health.sweeps)]


def _runs(ctx: Context) -> str:
    """How many runs are used, and the categories of the others."""
    f, total = ctx.health.flagged, len(ctx.data.runs)
    if f.empty:
        return f"All {total} runs finished, are tagged completed and have every metric."
    counts = f["category"].value_counts()
    return (f"{len(ctx.health.usable)} of {total} runs are used; "
            + ", ".join(f"**{n} {c}**" for c, n in counts.items())
            + " are listed here and left out of every table and figure.")


def _flagged(ctx: Context) -> list[str]:
    """The runs left out, one row each with its category and problem."""
    f = ctx.health.flagged
    if f.empty:
        return []
    return [markdown.table(pd.DataFrame({
        "run": [short_id(r) for r in f["run_id"]], "name": f["run_name"],
        "task": f["task"], "framework": f["framework"], "variant": f["variant"],
        "seed": [str(s) if not pd.isna(s) else "?" for s in f["seed"]],
        "status": f["status"], T.COMPLETED: ["yes" if c else "no" for c in f[T.COMPLETED]],
        "category": f["category"], "problem": [str(p)[:300] for p in f["problem"]],
    }), "Runs not used", text=True)]


def _sweeps(s: pd.DataFrame) -> list[str]:
    """The sweeps' parent runs as a table, then the relaunched sweeps in words."""
    if not len(s):
        return ["No sweep parent runs among the selected runs."]
    shown = s.assign(parent_run=[short_id(r) for r in s["parent_run"]],
                     sweep=[str(g)[:8] for g in s["sweep"]])
    shown = shown.astype(object).map(lambda v: fmt.DASH if pd.isna(v) else str(v))
    shown = shown.rename(columns={
        T.SWEEP_ID: "sweep id", "parent_run": "parent run", "runs_here": "runs in store",
        "runs_completed": "runs completed", "finished": "jobs finished",
        "skipped": "jobs skipped", "failed": "jobs failed"})
    return [markdown.table(shown, "Sweeps (parent runs; job counts from the sweep's closing "
                                  "summary; sweep: the sweep_key its launches share)", text=True),
            *relaunches(s)]


def relaunches(sweeps: pd.DataFrame) -> list[str]:
    """One sentence per sweep launched more than once, as one list: its parents in order, and
    that only the newest one's counts judge it (earlier launches' completed jobs are its skipped
    ones); no block when no sweep was relaunched."""
    lines = []
    for group, g in sweeps.groupby("sweep", sort=False):
        launches = g[T.SWEEP_ID].replace("", None).fillna(g["parent_run"]).nunique()
        if launches < 2:  # one launch (a parent per experiment it logged to)
            continue
        g = g.iloc[::-1]  # the table lists the newest parent first
        parents = ", ".join(f"{short_id(r.parent_run)} (sweep id {r.sweep_id or '?'}, "
                            f"{r.experiment}, {r.status})" for r in g.itertuples())
        lines.append(f"Sweep {str(group)[:8]} was launched {launches} times; parents, oldest "
                     f"first: {parents}. {int(g['runs_completed'].sum())} completed run(s) "
                     "across them. A relaunch skips the jobs earlier launches completed, so "
                     "the earlier parents are superseded, not incomplete, and the newest "
                     "parent's counts judge the sweep.")
    return [markdown.bullets(lines)] if lines else []


SECTION = Section(titles.HEALTH, write)
