"""The primary questions a sweep declared, resolved to the report's arms.

A sweep preset states what it was run to answer (`study.primary`); the sweep's parent run carries
it as tag `primary_comparisons`, one "A vs B" per line, each side a preset name
(`part3_imdb_torch_weightdrop`) or `framework/variant` (`keras/keras_impl0`). These comparisons
form the primary family, Holm-corrected together; every other pair the report finds is
exploratory. Sides are looked up among the runs of sweeps of the same preset (a restarted sweep
skips the runs an earlier attempt completed, so its runs are spread over several parents), and
a primary pair is compared even when its arms differ in settings (Part 3's arms differ in
learning rate and weight decay): those differences are listed beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from experiments import tracking as T
from reports.analysis.pairs import Arm, differing

TAG = T.PRIMARY


@dataclass(frozen=True)
class Declared:
    """One line of a parent's tag: "A vs B" as the preset wrote it."""

    a: str
    b: str
    sweep_preset: str
    margins: dict = field(default_factory=dict, compare=False)
    declared_seeds: int = 0

    @property
    def text(self) -> str:
        return f"{self.a} vs {self.b}"


@dataclass(frozen=True)
class Resolved:
    """A declared comparison with its arms in this report; `problem` says why it cannot be
    tested ('' when both sides were found)."""

    text: str
    a: Arm | None
    b: Arm | None
    problem: str = ""
    differs: list[str] = field(default_factory=list)
    margins: dict = field(default_factory=dict)  # metric -> margin ("0.005", "2%")
    declared_seeds: int = 0  # the sweep's declared seed count (0: not declared)


def parse(tag: str) -> list[tuple[str, str]]:
    """("A", "B") per non-empty line "A vs B"; a malformed line gives ("line", "")."""
    out = []
    for line in (tag or "").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            a, sep, b = line.partition(" vs ")
            out.append((a.strip(), b.strip()) if sep else (line, ""))
    return out


def declared(parents: pd.DataFrame) -> list[Declared]:
    """Every parent's primary comparisons in parent order, each (preset, A, B) once: a restarted
    sweep declares the same family again."""
    out: dict[tuple[str, str, str], Declared] = {}
    ordered = parents.sort_values("start_time", kind="stable") if len(parents) else parents
    for p in ordered.itertuples():
        preset = p.tags.get(T.SWEEP_PRESET, "") or p.sweep_id or p.run_id
        margins = dict(line.split("=", 1) for line in
                       p.tags.get(T.MARGINS, "").splitlines() if "=" in line)
        seeds = int(p.tags.get(T.DECLARED_SEEDS, "0") or 0)
        for a, b in parse(p.tags.get(TAG, "")):
            out.setdefault((preset, a, b), Declared(a, b, preset, margins, seeds))
    return list(out.values())


def sweep_presets(runs: pd.DataFrame, parents: pd.DataFrame) -> list[str]:
    """The sweep preset each run belongs to ('' for runs outside any sweep)."""
    by_parent = {p.run_id: p.tags.get(T.SWEEP_PRESET, "") or p.sweep_id or p.run_id
                 for p in parents.itertuples()}
    by_sweep = {p.sweep_id: by_parent[p.run_id] for p in parents.itertuples() if p.sweep_id}
    return [by_parent.get(r.parent_run_id) or by_sweep.get(r.sweep_id) or ""
            for r in runs.itertuples()]


def for_task(found: list[Declared], task: str, every_run: pd.DataFrame, usable: pd.DataFrame,
             parents: pd.DataFrame, arms: list[Arm]) -> list[Resolved]:
    """The declared comparisons that belong to `task` (their sweep has a run of it, usable or
    not), each resolved against the usable arms of that sweep preset."""
    if not found:
        return []
    every = every_run.assign(**{T.SWEEP_PRESET: sweep_presets(every_run, parents)})
    mine = usable.assign(**{T.SWEEP_PRESET: sweep_presets(usable, parents)})
    mine = mine[mine["task"] == task]
    by_id = {a.arm: a for a in arms}
    out = []
    for d in found:
        if not ((every["task"] == task) & (every[T.SWEEP_PRESET] == d.sweep_preset)).any():
            continue
        if not d.b:
            out.append(Resolved(d.a, None, None, "not of the form 'A vs B'", [], d.margins,
                                d.declared_seeds))
            continue
        scope = mine[mine[T.SWEEP_PRESET] == d.sweep_preset]
        sides, problems = [], []
        for side in (d.a, d.b):
            ids = sorted(set(scope.loc[_matches(scope, side), "arm"]))
            if len(ids) == 1:
                sides.append(by_id[ids[0]])
                continue
            sides.append(None)
            problems.append(f"no usable run of {side} in this report" if not ids else
                            f"{side} matches {len(ids)} arms ({', '.join(ids)})")
        a, b = sides
        out.append(Resolved(d.text, a, b, "; ".join(problems),
                            differing(a, b) if a and b else [], d.margins, d.declared_seeds))
    return out


def _matches(runs: pd.DataFrame, side: str) -> pd.Series:
    if "/" in side:
        framework, variant = side.split("/", 1)
        return (runs["framework"] == framework) & (runs["variant"] == variant)
    return runs[T.PRESET] == side
