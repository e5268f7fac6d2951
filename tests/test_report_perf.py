"""`make report` on ~200 runs within its time budget.

The store is real (SQLite through MlflowClient) and laid out exactly as experiments/run.py logs
a run: the resolved config as params, the tag scheme, per-epoch metrics at step = epoch, the
final metrics at the best epoch. Only the metric values are simulated (training 200 runs would
take hours). Usable as a script to make a store for a manual measurement:

    .venv/bin/python -m tests.test_report_perf /tmp/perf/mlflow.db
"""

from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import config as C
from tests.conftest import REPO, compose_cfg

VARIANTS = ["none", "naive", "locked", "keras_impl0", "keras_impl1", "keras_impl2",
            "weightdrop", "weightdrop_variational", "weightdrop_column",
            "weightdrop_column_untied"]
CPU_BUDGET_S = 10.0


def _history(task: str, variant: str, framework: str, seed: int, epochs: int,
             rng: np.random.Generator) -> tuple[dict[str, list[float]], dict[str, float]]:
    effect = VARIANTS.index(variant) / len(VARIANTS)
    speed = (40000 if framework == "torch" else 25000) * (1 - 0.4 * effect)
    per: dict[str, list[float]] = {}
    for e in range(1, epochs + 1):
        noise = rng.normal(0, 0.01)
        if task == "ptb":
            ppl = 400 / (1 + 0.5 * e) + 90 - 8 * effect + rng.normal(0, 1.5)
            vals = {"valid_perplexity_std": ppl,
                    "valid_perplexity_mc": ppl - 0.4 * effect + rng.normal(0, 0.3),
                    "train_loss": math.log(ppl) - 0.1}
        else:
            acc = 0.6 + 0.15 * (1 - math.exp(-e / 2)) + 0.03 * effect + noise
            vals = {"valid_accuracy_std": acc,
                    "valid_accuracy_mc": acc + 0.002 * effect + rng.normal(0, 0.002),
                    "valid_log_loss_std": 1 - acc, "valid_log_loss_mc": 1 - acc - 0.001,
                    "train_loss": 0.7 / e + noise}
        vals.update({"lr": 1.0, "epoch_seconds": 60.0 / speed * 1000 + rng.normal(0, 0.1),
                     "train_tokens_per_s": speed * (1 + rng.normal(0, 0.02)),
                     "eval_seconds": 0.3})
        for k, v in vals.items():
            per.setdefault(k, []).append(float(v))
    key = "valid_perplexity_std" if task == "ptb" else "valid_accuracy_std"
    best = int(np.argmin(per[key]) if task == "ptb" else np.argmax(per[key]))
    final = {"best_epoch": best + 1.0}
    for k in per:
        if k.startswith("valid_"):
            final["test_" + k.removeprefix("valid_")] = per[k][best] + rng.normal(0, 0.002)
    return per, final


def make_store(db: Path, seeds: int = 5) -> int:
    """Write 2 tasks x 2 frameworks x 10 variants x `seeds` completed runs, a failed and a
    killed one; returns the number of training runs."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from experiments import tracking

    uri = f"sqlite:///{db}"
    tracking.ensure_store(uri)
    client = MlflowClient(uri)
    rng = np.random.default_rng(0)
    count = 0
    for task, epochs in (("ptb", 13), ("rt", 5)):
        exp = tracking.experiment_id(client, task, uri)
        parent = client.create_run(exp, tags={"sweep_id": f"perf-{task}", "is_sweep_parent":
                                              "true", "sweep_jobs": str(20 * seeds)})
        for framework in ("torch", "keras"):
            for variant in VARIANTS:
                cfg = compose_cfg([f"task={task}", f"framework={framework}",
                                   f"variant={variant}", f"train.epochs={epochs}"])
                params = C.flatten(cfg)
                for seed in range(seeds):
                    params["seed"] = seed
                    count += 1
                    per, final = _history(task, variant, framework, seed, epochs, rng)
                    tags = {"task": task, "framework": framework, "variant": variant,
                            "seed": str(seed), "config_hash": f"{task}{framework}{variant}{seed}",
                            "completed": "true", "sweep_id": f"perf-{task}",
                            "mlflow.parentRunId": parent.info.run_id, "git_commit": "perf",
                            "torch_version": "2.13.0"}
                    run = client.create_run(exp, tags=tags).info.run_id
                    now = int(time.time() * 1000)
                    metrics = [Metric(k, v, now, e + 1) for k, vs in per.items()
                               for e, v in enumerate(vs)]
                    metrics += [Metric(k, v, now, int(final["best_epoch"]))
                                for k, v in final.items()]
                    client.log_batch(run, metrics=metrics[:1000],
                                     params=[Param(k, str(v)) for k, v in params.items()][:100])
                    client.set_terminated(run, "FINISHED")
        for status in ("FAILED", "KILLED"):
            run = client.create_run(exp, tags={"task": task, "framework": "torch",
                                               "variant": "naive", "seed": "9",
                                               "completed": "false",
                                               "failure_reason": "RuntimeError: perf"})
            client.set_terminated(run.info.run_id, status)
            count += 1
        for key, value in (("finished", 20 * seeds), ("skipped", 0), ("failed", 0)):
            client.set_tag(parent.info.run_id, f"sweep_{key}", str(value))
        client.set_terminated(parent.info.run_id, "FINISHED")
    return count


@pytest.mark.e2e
def test_report_on_200_runs_within_cpu_budget(tmp_path):
    db = tmp_path / "mlflow.db"
    n = make_store(db)
    assert n >= 200
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "reports.build", "--tracking-uri", f"sqlite:///{db}", "--out",
         str(tmp_path / "report")], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MPLBACKEND": "Agg", "REPORT_WORKERS": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stderr
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"\nreport on {n} runs: {cpu:.1f} s CPU, {wall:.1f} s wall\n{proc.stdout}")
    # CPU time, not wall time: the test machine's cores are shared, which only adds waiting.
    # Figures inline (REPORT_WORKERS=1): the CPU of the work itself, without the worker
    # processes' fork and pickling overhead; on an idle machine wall time is about this.
    assert cpu <= CPU_BUDGET_S, f"report took {cpu:.1f} s CPU on {n} runs"
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"{n} training runs" in text and "4 run(s) are not in the tables" in text
    assert "| weightdrop_column_untied | keras | 5 |" in text


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/report_perf/mlflow.db")
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"{make_store(target)} runs in {target} ({time.perf_counter() - t0:.1f} s)")
