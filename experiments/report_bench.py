"""`make bench-report`: the time `make report` takes on ~200 runs (target <= 10 s).

A benchmark, not a test (speed is never asserted in tests), and not part of the report: it
times `python -m reports.build` from outside, as a user runs it. The store is real (SQLite
through MlflowClient) and laid out exactly as experiments/run.py logs a run: the resolved
config as params, the tag scheme, per-epoch metrics at step = epoch, the final metrics at the
best epoch.
Only the metric values are simulated (training 200 runs would take hours).

    .venv/bin/python -m experiments.report_bench [/tmp/perf/mlflow.db]
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
from experiments import tracking_store
from experiments.metrics import (
    BEST_EPOCH,
    EPOCH_SECONDS,
    EVAL_SECONDS,
    LR,
    MC,
    STD,
    TEST,
    TRAIN_LOSS,
    TRAIN_TOKENS_PER_S,
    VALID,
    key,
    parse_key,
)

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
    metric = "perplexity" if task == "ptb" else "accuracy"
    per: dict[str, list[float]] = {}
    for e in range(1, epochs + 1):
        noise = rng.normal(0, 0.01)
        if task == "ptb":
            ppl = 400 / (1 + 0.5 * e) + 90 - 8 * effect + rng.normal(0, 1.5)
            vals = {key(VALID, metric, STD): ppl,
                    key(VALID, metric, MC): ppl - 0.4 * effect + rng.normal(0, 0.3),
                    TRAIN_LOSS: math.log(ppl) - 0.1}
        else:
            acc = 0.6 + 0.15 * (1 - math.exp(-e / 2)) + 0.03 * effect + noise
            vals = {key(VALID, metric, STD): acc,
                    key(VALID, metric, MC): acc + 0.002 * effect + rng.normal(0, 0.002),
                    key(VALID, "log_loss", STD): 1 - acc,
                    key(VALID, "log_loss", MC): 1 - acc - 0.001,
                    TRAIN_LOSS: 0.7 / e + noise}
        vals.update({LR: 1.0, EPOCH_SECONDS: 60.0 / speed * 1000 + rng.normal(0, 0.1),
                     TRAIN_TOKENS_PER_S: speed * (1 + rng.normal(0, 0.02)),
                     EVAL_SECONDS: 0.3})
        for k, v in vals.items():
            per.setdefault(k, []).append(float(v))
    selected = per[key(VALID, metric, STD)]
    best = int(np.argmin(selected) if task == "ptb" else np.argmax(selected))
    final = {BEST_EPOCH: best + 1.0}
    for k in per:
        if (parsed := parse_key(k)) and parsed[0] == VALID:
            final[key(TEST, parsed[1], parsed[2])] = per[k][best] + rng.normal(0, 0.002)
    return per, final


def make_store(db: Path, seeds: int = 5) -> int:
    """Write 2 tasks x 2 frameworks x 10 variants x `seeds` completed runs, a failed and a
    killed one; returns the number of training runs."""
    from mlflow.tracking import MlflowClient

    from experiments import tracking as T

    uri = f"sqlite:///{db}"
    tracking_store.ensure_store(uri)
    client = MlflowClient(uri)
    rng = np.random.default_rng(0)
    count = 0
    for task, epochs in (("ptb", 13), ("rt", 5)):
        exp = T.experiment_id(client, task, uri)
        parent = T.create_run(client, exp, {T.SWEEP_ID: f"perf-{task}", T.IS_SWEEP_PARENT: T.TRUE,
                                            T.SWEEP_JOBS: str(20 * seeds)})
        for framework in ("torch", "keras"):
            for variant in VARIANTS:
                cfg = compose_cfg([f"task={task}", f"framework={framework}",
                                   f"variant={variant}", f"train.epochs={epochs}"])
                params = C.flatten(cfg)
                for seed in range(seeds):
                    params["seed"] = seed
                    count += 1
                    per, final = _history(task, variant, framework, seed, epochs, rng)
                    tags = {T.TASK: task, T.FRAMEWORK: framework, T.VARIANT: variant,
                            T.SEED: str(seed), T.CONFIG_HASH: f"{task}{framework}{variant}{seed}",
                            T.COMPLETED: T.TRUE, T.SWEEP_ID: f"perf-{task}",
                            T.PARENT_RUN_ID: parent, T.GIT_COMMIT: "perf",
                            f"torch{T.VERSION_SUFFIX}": "2.13.0"}
                    run = T.create_run(client, exp, tags)
                    points = [(k, v, e + 1) for k, vs in per.items() for e, v in enumerate(vs)]
                    points += [(k, v, int(final[BEST_EPOCH])) for k, v in final.items()]
                    T.log_points(client, run, points)
                    T.log_params(client, run, params)
                    T.end_run(client, run, "FINISHED")
        for status in ("FAILED", "KILLED"):
            run = T.create_run(client, exp, {T.TASK: task, T.FRAMEWORK: "torch",
                                             T.VARIANT: "naive", T.SEED: "9",
                                             T.COMPLETED: T.FALSE})
            T.end_run(client, run, status, "RuntimeError: perf")
            count += 1
        T.close_sweep_parent(client, parent, {"FINISHED": 20 * seeds, "SKIPPED": 0, "FAILED": 0},
                             "FINISHED")
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
