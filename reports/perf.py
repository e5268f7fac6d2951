"""`make bench-report`: the time `make report` takes on ~200 runs (target <= 10 s).

A benchmark, not a test (speed is never asserted in tests). The store is real (SQLite through
MlflowClient) and laid out exactly as experiments/run.py logs a run: the resolved config as
params, the tag scheme, per-epoch metrics at step = epoch, the final metrics at the best epoch.
Only the metric values are simulated (training 200 runs would take hours).

    .venv/bin/python -m reports.perf [/tmp/perf/mlflow.db]
"""

from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import experiments.offline  # noqa: F401  (MLflow telemetry off before mlflow is imported)
from experiments import config as C

VARIANTS = ["none", "naive", "locked", "keras_impl0", "keras_impl1", "keras_impl2",
            "weightdrop", "weightdrop_variational", "weightdrop_column",
            "weightdrop_column_untied"]
REPO = Path(__file__).resolve().parent.parent


def compose_cfg(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from experiments.config import register

    register()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


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


def time_report(db: Path, out: Path) -> tuple[float, float, str]:
    """CPU (of the report process and its children) and wall seconds of one report build."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "reports.build", "--tracking-uri", f"sqlite:///{db}", "--out",
         str(out)], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "MPLBACKEND": "Agg"}, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.stdout


def main() -> None:
    target = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()) / "mlflow.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        t0 = time.perf_counter()
        print(f"{make_store(target)} runs written to {target} ({time.perf_counter() - t0:.0f} s)")
    cpu, wall, _ = time_report(target, target.parent / "report")
    print(f"make report: {wall:.1f} s wall, {cpu:.1f} s CPU (target: 10 s on 200 runs)")


if __name__ == "__main__":
    main()
