"""Sweep orchestration as a Hydra callback: every job composed and checked before anything is
written (experiments/sweep_jobs.py), one MLflow parent run per experiment (closing the stale
parents a killed run of the same sweep left open), the store created once before any job, a
progress line across jobs, a closing summary, and a clean close on Ctrl-C (`close_launch`).

Jobs report to the launching process through a small `result.json` in their Hydra output folder,
so the summary works the same with the basic, joblib and submitit launchers.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments import run_names, sweep_jobs, tracking, tracking_store
from experiments.launch import Handover, export, received
from experiments.refusal import one_line, refuse

RESULT_FILE = "result.json"
STATUSES = tracking.JOB_STATUSES


@dataclass
class Launch:
    """What this launching process opened, so that Ctrl-C can close it."""

    uri: str
    sweep_id: str
    sweep_dir: str
    total: int
    experiment_ids: list[str] = field(default_factory=list)
    parents: dict[str, str] = field(default_factory=dict)  # experiment name -> our parent run


_launch: Launch | None = None


def sweep_overrides(config: DictConfig) -> list[str]:
    """The preset's params first: the command line wins for a key both set (as in Hydra)."""
    params = config.hydra.sweeper.get("params") or {}
    return [*(f"{k}={v}" for k, v in params.items()), *config.hydra.overrides.task]


class SweepCallback(Callback):
    """Registered in conf/config.yaml under hydra.callbacks."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _launch
        from mlflow.tracking import MlflowClient

        start = time.perf_counter()
        try:
            jobs = sweep_jobs.checked(config.hydra.job.config_name, sweep_overrides(config))
            checked_s = time.perf_counter() - start
            uri = tracking_store.resolve_uri(config.tracking.uri)
            tracking_store.ensure_store(uri)  # once, before any job: the SQLite first-write race
        except (ValueError, tracking_store.StoreFull) as e:  # bad input, a full store: no job
            refuse(e)
        client = MlflowClient(uri)
        sweep_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        preset = config.hydra.runtime.choices.get("sweep") or "custom"
        key, skipped = sweep_jobs.sweep_key(jobs), sum(bool(j.skip) for j in jobs)
        _launch = launch = Launch(uri, sweep_id, str(config.hydra.sweep.dir), len(jobs))
        closed = []
        for name in sweep_jobs.experiments(jobs):
            exp_id = tracking.experiment_id(client, name, uri)
            launch.experiment_ids.append(exp_id)
            if config.tracking.parent_run_id:
                continue
            run_id = tracking.open_sweep_parent(
                client, exp_id, sweep_id=sweep_id, preset=preset, jobs=len(jobs),
                overrides=sweep_overrides(config), key=key, primary=config.study.primary,
                job_hashes=sweep_jobs.job_hashes(jobs), margins=dict(config.study.margin),
                declared_seeds=config.study.seeds)
            launch.parents[name] = run_id
            closed += tracking.supersede_stale_parents(client, exp_id, key, run_id)
        # to the jobs, through the environment (experiments/launch.py); each job's plan reads it
        export(Handover(
            parents=launch.parents, sweep_id=sweep_id, total=len(jobs),
            to_train=len(jobs) - skipped, start=time.time(),
            parallel_jobs=launcher_jobs(config),
            # run names carry what the jobs differ in (run_names.run_name)
            axes=tuple(run_names.varied_axes(j.overrides for j in jobs))))
        stale = f", closed {len(closed)} stale parent run(s) of this sweep" if closed else ""
        print(f"[sweep {sweep_id}] {len(jobs)} jobs ({skipped} skipped by the grid; all checked "
              f"in {checked_s:.1f}s), store {uri}{stale}", file=sys.stderr)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        sweep = received(os.environ)
        total = sweep.total
        if not total:
            return
        results = collect_results(Path(HydraConfig.get().sweep.dir))
        done, ran = len(results), sum(r["status"] != "SKIPPED" for r in results)
        elapsed = time.time() - (sweep.start or time.time())
        left = eta_seconds(results, sweep.to_train or total, sweep.parallel_jobs)
        eta = f"ETA {left / 60:.1f} min" if left is not None else "no ETA yet"
        print(f"[sweep] {done}/{total} jobs done ({done - ran} skipped), {elapsed / 60:.1f} min "
              f"elapsed, {eta}", file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _launch
        results = collect_results(Path(config.hydra.sweep.dir))
        counts = _counts(results)
        sweep = received(os.environ)
        total = sweep.total
        lines = [f"[sweep] summary: {counts['FINISHED']} done, {counts['SKIPPED']} skipped, "
                 f"{counts['FAILED']} failed, {len(results)} of {total} reported"]
        lines += [f"  {r['status']} {r['name']}: {r['reason']}" for r in results if r["reason"]]
        print("\n".join(lines), file=sys.stderr, flush=True)
        # resolved at the start; no one-shot /health check here: the client's retries ride
        # out a tracking server that is briefly down as the sweep ends
        unwritten = close_parents(config.tracking.uri or tracking_store.default_uri(),
                                  dict(sweep.parents), counts)
        if unwritten:
            print(f"  end-of-sweep writes FAILED: {unwritten}", file=sys.stderr)
        _launch = None
        if counts["FAILED"] or unwritten:
            sys.exit(1)  # SystemExit passes through Hydra's callback guard; an error would not


def close_parents(uri: str, parents: dict[str, str], counts: dict[str, int]) -> str:
    """Close the sweep's parent runs with their jobs' counts; "" when done, else why not, in
    one line. Why returned, not raised: Hydra turns an exception raised in a callback into a
    warning and the sweep would exit 0 with its parents left RUNNING."""
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(uri)
        for run_id in parents.values():
            tracking.close_sweep_parent(client, run_id, counts,
                                        "FAILED" if counts["FAILED"] else "FINISHED")
    except Exception as e:  # noqa: BLE001 - whatever the store answered, the sweep says so
        why = tracking_store.no_space(e, uri) or f"{uri}: {one_line(e)}"
        return (f"{len(parents)} parent run(s) not closed ({why}); they stay RUNNING until a "
                "rerun of this sweep closes them")
    return ""


def close_launch(error: BaseException) -> str | None:
    """Close what a sweep launched by this process left open when `error` stopped it, and say so
    in one line (None: no sweep was launched here). joblib answers Ctrl-C, or a worker that died,
    by SIGKILLing its workers, often before a job could mark its own run: every run of this
    sweep still RUNNING ends KILLED here; the parents end KILLED after Ctrl-C and FAILED after
    an error, each with a failure_reason. A rerun of the same command redoes what is missing."""
    global _launch
    launch, _launch = _launch, None
    if launch is None:
        return None
    from mlflow.tracking import MlflowClient

    ctrl_c = isinstance(error, KeyboardInterrupt)
    why = "interrupted (Ctrl-C)" if ctrl_c else f"stopped by {type(error).__name__}"
    client = MlflowClient(launch.uri)
    ours = set(launch.parents.values())

    def search(status: str) -> list:
        where = f"{tracking.tag_equals(tracking.SWEEP_ID, launch.sweep_id)} and " \
            f"attributes.status = '{status}'"
        return client.search_runs(launch.experiment_ids, where, max_results=10000) \
            if launch.experiment_ids else []

    detail = "" if ctrl_c else f": {one_line(error)}"
    for run in search("RUNNING"):
        if run.info.run_id not in ours:
            tracking.end_run(client, run.info.run_id, "KILLED",
                             f"{type(error).__name__}: the sweep was {why}{detail}")
    results = collect_results(Path(launch.sweep_dir))
    after = f"after {len(results)} of {launch.total} jobs"
    for run_id in ours:
        tracking.close_sweep_parent(client, run_id, _counts(results),
                                    "KILLED" if ctrl_c else "FAILED", f"{why} {after}{detail}")
    killed = sum(r.info.run_id not in ours for r in search("KILLED"))
    parents = f"{len(ours)} parent run(s) {'KILLED' if ctrl_c else 'FAILED'}"
    return (f"[sweep {launch.sweep_id}] {why} {after}: {killed} run(s) marked KILLED, "
            f"{parents}; rerun the same command to resume")


def launcher_jobs(config: DictConfig) -> int:
    launcher = config.hydra.get("launcher") or {}
    jobs = launcher.get("n_jobs") or launcher.get("tasks_per_node") or 1
    return max(1, int(jobs))


def write_result(status: str, run_id: str | None, reason: str = "",
                 seconds: float | None = None) -> None:
    """Record a job's outcome (and its wall time, for the ETA) for the sweep summary."""
    hc = HydraConfig.get()
    record_result(Path(hc.runtime.output_dir), " ".join(hc.overrides.task), status, run_id,
                  reason, seconds)


def record_result(folder: Path, name: str, status: str, run_id: str | None,
                  reason: str, seconds: float | None = None) -> None:
    """A job's outcome in its output folder; also written by the launching process for a job
    that died without writing its own (hydra_plugins/rds_launcher)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESULT_FILE).write_text(json.dumps({"status": status, "run_id": run_id,
                                                  "reason": reason, "name": name,
                                                  "seconds": seconds}))


def eta_seconds(results: list[dict[str, Any]], to_train: int, parallel: int) -> float | None:
    """Wall seconds left: the jobs still to train times the median wall time of the jobs that
    trained, over the jobs that run side by side. The median, not elapsed / done: a sweep's
    first jobs carry one-off costs (the compiled loop's first build, the dataset's first
    tokenisation) that would inflate every early ETA. A grid skip (it has a reason) takes no
    time and was never to train; a resumed job (skipped without one) was, and is done. None
    until a job has trained."""
    times = [r["seconds"] for r in results
             if r["status"] != "SKIPPED" and r.get("seconds") is not None]
    if not times:
        return None
    grid_skips = sum(r["status"] == "SKIPPED" and bool(r["reason"]) for r in results)
    left = max(to_train - (len(results) - grid_skips), 0)
    return left * statistics.median(times) / max(parallel, 1)


def collect_results(sweep_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob(f"*/{RESULT_FILE}"))]


def _counts(results: list[dict[str, Any]]) -> dict[str, int]:
    return {s: sum(r["status"] == s for r in results) for s in STATUSES}
