"""What a sweep's launching process hands to its jobs: its parent runs, its id, its job count,
when it started, how many jobs run side by side and which override keys its jobs differ in.

Why the environment: a job may run in a joblib worker or a SLURM job, which inherit the
launching process's environment and nothing else. The sweep callback writes it once
(`export`); a job's `experiments.plan.make` reads it once (`received`) into the run's frozen
plan, and the callback's own progress lines read it the same way. Cheap: no Hydra.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from types import MappingProxyType

PARENTS = "RDS_PARENT_RUNS"  # json {experiment name: parent run id}
TOTAL, START, SWEEP_ID = "RDS_SWEEP_TOTAL", "RDS_SWEEP_START", "RDS_SWEEP_ID"
TO_TRAIN = "RDS_SWEEP_TO_TRAIN"  # jobs the grid does not skip (the ETA's work)
PARALLEL_JOBS = "RDS_PARALLEL_JOBS"  # jobs the launcher runs side by side (threads per job)
AXES = "RDS_SWEEP_AXES"  # json list: the override keys the sweep's jobs differ in (run names)


@dataclass(frozen=True)
class Handover:
    """A sweep's facts as its jobs see them; the defaults are a run outside any sweep."""

    parents: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    sweep_id: str | None = None
    total: int = 0  # jobs in the sweep, skipped ones included
    to_train: int = 0  # of those, the jobs the grid does not skip
    start: float | None = None  # time.time() when the sweep started
    parallel_jobs: int = 1
    axes: tuple[str, ...] = ()

    def parent(self, experiment: str) -> str | None:
        """The sweep's parent run of `experiment` (None outside a sweep)."""
        return self.parents.get(experiment)


def export(handover: Handover, environ: MutableMapping[str, str] = os.environ) -> None:
    """Hand the sweep's facts to the jobs this process starts from now on."""
    environ.update({
        PARENTS: json.dumps(dict(handover.parents)), TOTAL: str(handover.total),
        TO_TRAIN: str(handover.to_train),
        START: str(handover.start), SWEEP_ID: handover.sweep_id or "",
        PARALLEL_JOBS: str(handover.parallel_jobs), AXES: json.dumps(list(handover.axes)),
    })


def received(environ: Mapping[str, str]) -> Handover:
    """The facts a launching process handed over (the defaults where it handed none)."""
    start = environ.get(START, "")
    return Handover(
        parents=MappingProxyType(json.loads(environ.get(PARENTS) or "{}")),
        sweep_id=environ.get(SWEEP_ID) or None,
        total=int(environ.get(TOTAL) or 0),
        to_train=int(environ.get(TO_TRAIN) or 0),
        start=float(start) if start and start != "None" else None,
        parallel_jobs=max(1, int(environ.get(PARALLEL_JOBS) or 1)),
        axes=tuple(json.loads(environ.get(AXES) or "[]")),
    )
