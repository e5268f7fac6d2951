"""Sweep orchestration as a Hydra callback: one MLflow parent run per task experiment, the store
created once before any job, a progress line across jobs, and a closing summary.

Jobs report to the launching process through a small `result.json` in their Hydra output folder,
so the summary works the same with the basic, joblib and submitit launchers.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments import tracking

ENV_PARENTS = "RDS_PARENT_RUNS"  # json {experiment name: parent run id}
ENV_TOTAL, ENV_START, ENV_SWEEP_ID = "RDS_SWEEP_TOTAL", "RDS_SWEEP_START", "RDS_SWEEP_ID"
RESULT_FILE = "result.json"


def sweep_overrides(config: DictConfig) -> list[str]:
    """The preset's params first: the command line wins for a key both set (as in Hydra)."""
    params = config.hydra.sweeper.get("params") or {}
    return [*(f"{k}={v}" for k, v in params.items()), *config.hydra.overrides.task]


def sweep_values(config: DictConfig, key: str, default: str) -> list[str]:
    """The values a swept key takes (e.g. every task), from the CLI and the preset's params."""
    values = [default]
    for override in OverridesParser.create().parse_overrides(sweep_overrides(config)):
        if override.get_key_element() == key:
            values = list(override.sweep_string_iterator()) if override.is_sweep_override() \
                else [override.get_value_element_as_str()]
    return values


def count_jobs(config: DictConfig) -> int:
    parsed = OverridesParser.create().parse_overrides(sweep_overrides(config))
    last: dict[str, int] = {}
    for o in parsed:
        last[o.get_key_element()] = len(list(o.sweep_string_iterator())) \
            if o.is_sweep_override() else 1
    return math.prod(last.values())


class SweepCallback(Callback):
    """Registered in conf/config.yaml under hydra.callbacks."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow.tracking import MlflowClient

        uri = tracking.resolve_uri(config.tracking.uri)
        tracking.ensure_store(uri)  # once, before any job: the SQLite first-write race
        client = MlflowClient(uri)
        sweep_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        total = count_jobs(config)
        preset = config.hydra.runtime.choices.get("sweep") or "custom"
        parents = {}
        if not config.tracking.parent_run_id:
            for task in sweep_values(config, "task", config.task.name.value):
                name = config.tracking.experiment or task
                exp_id = tracking.experiment_id(client, name, uri)
                run = client.create_run(exp_id, run_name=f"sweep {preset} {sweep_id}", tags={
                    "sweep_id": sweep_id, "sweep_preset": preset, "is_sweep_parent": "true",
                    "sweep_jobs": str(total), "git_commit": tracking.git_commit(),
                    "sweep_overrides": " ".join(sweep_overrides(config))[:5000],
                    tracking.PRIMARY: "\n".join(config.study.primary)[:5000],
                })
                parents[name] = run.info.run_id
        os.environ.update({
            ENV_PARENTS: json.dumps(parents), ENV_TOTAL: str(total),
            ENV_START: str(time.time()), ENV_SWEEP_ID: sweep_id,
            "RDS_PARALLEL_JOBS": str(launcher_jobs(config)),
        })
        print(f"[sweep {sweep_id}] {total} jobs, store {uri}", file=sys.stderr)

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        total = int(os.environ.get(ENV_TOTAL, "0"))
        if not total:
            return
        sweep_dir = Path(HydraConfig.get().sweep.dir)
        done = len(list(sweep_dir.glob(f"*/{RESULT_FILE}")))
        elapsed = time.time() - float(os.environ.get(ENV_START, time.time()))
        eta = elapsed / max(done, 1) * (total - done)
        print(f"[sweep] {done}/{total} jobs done, {elapsed / 60:.1f} min elapsed, "
              f"ETA {eta / 60:.1f} min", file=sys.stderr)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mlflow.tracking import MlflowClient

        results = collect_results(Path(config.hydra.sweep.dir))
        statuses = ("FINISHED", "SKIPPED", "FAILED")
        counts = {s: sum(r["status"] == s for r in results) for s in statuses}
        total = os.environ.get(ENV_TOTAL)
        lines = [f"[sweep] summary: {counts['FINISHED']} done, {counts['SKIPPED']} skipped, "
                 f"{counts['FAILED']} failed, {len(results)} of {total} reported"]
        lines += [f"  {r['status']} {r['name']}: {r['reason']}" for r in results if r["reason"]]
        print("\n".join(lines), file=sys.stderr)
        parents = json.loads(os.environ.get(ENV_PARENTS, "{}"))
        if parents:
            client = MlflowClient(tracking.resolve_uri(config.tracking.uri))
            for run_id in parents.values():
                for key, value in counts.items():
                    client.set_tag(run_id, f"sweep_{key.lower()}", str(value))
                client.set_terminated(run_id, "FAILED" if counts["FAILED"] else "FINISHED")
        if counts["FAILED"]:
            sys.exit(1)


def launcher_jobs(config: DictConfig) -> int:
    launcher = config.hydra.get("launcher") or {}
    jobs = launcher.get("n_jobs") or launcher.get("tasks_per_node") or 1
    return max(1, int(jobs))


def parent_run_id(experiment: str) -> str | None:
    return json.loads(os.environ.get(ENV_PARENTS, "{}")).get(experiment)


def write_result(status: str, run_id: str | None, reason: str = "") -> None:
    """Record a job's outcome for the sweep summary (multirun only)."""
    hc = HydraConfig.get()
    name = " ".join(hc.overrides.task)
    path = Path(hc.runtime.output_dir) / RESULT_FILE
    path.write_text(json.dumps({"status": status, "run_id": run_id, "reason": reason,
                                "name": name}))


def collect_results(sweep_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob(f"*/{RESULT_FILE}"))]
