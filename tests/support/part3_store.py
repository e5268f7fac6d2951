"""A small real MLflow store laid out like the `part3` sweep, for the report's tests.

Written through MlflowClient exactly as experiments/run.py and experiments/sweep.py log (as
experiments/report_bench.py does for the benchmark): each run's params are the flattened config
that `preset=part3_imdb_*` composes, tags `preset` (by which the report finds Part 3's numbers in
conf/published.yaml) and `select_on`, early stopping (`epochs_run` < train.epochs), MC
validation only at the best epoch (train.mc_every = 0). Only the metric values are simulated,
with a seed effect shared by all arms (what pairing by seed removes). The runs of one preset in
the first parent also carry `published.*` params, as runs logged before the data file did, with
numbers that are not the data file's (STALE): the report must neither read them nor split the
arm by them.

Layout:
- the part3 sweep, restarted once: parent A holds seeds 0-2, parent B (same sweep preset, a new
  sweep id) seeds 3-4; both declare conf/sweep/part3.yaml's `study.primary`;
- a second sweep ("grid") of three torch arms at one setting, no preset, declaring two primary
  comparisons by framework/variant, one of them of an arm it never ran (untestable).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from experiments import config as C
from experiments import tracking, tracking_store
from tests.conftest import CONF, compose_cfg

SEEDS = (0, 1, 2, 3, 4)
SWEEP = ["train.patience=5", "train.mc_every=0"]  # as conf/sweep/part3.yaml sets them
# simulated true test accuracy per arm: a mix of clear gaps, reversals and near-ties
TRUE = {
    "part3_imdb_keras_variational": 0.850, "part3_imdb_keras_naive": 0.846,
    "part3_imdb_keras_none": 0.836, "part3_imdb_torch_weightdrop": 0.8385,
    "part3_imdb_torch_weightdrop_variational": 0.8440, "part3_imdb_torch_locked": 0.8405,
    "part3_imdb_torch_naive": 0.8395, "part3_imdb_torch_none": 0.8350,
}
GRID = {"none": 0.830, "naive": 0.842, "locked": 0.836}
GRID_SETTING = ["task=imdb", "model=part3", "framework=torch", "train.epochs=20", "train.lr=0.001",
                "train.weight_decay=1e-4", "train.select_on=log_loss", *SWEEP]
GRID_PRIMARY = "torch/naive vs torch/none\ntorch/naive vs torch/weightdrop"
# what a run of this preset logged before conf/published.yaml existed (the pair the other way
# round, as an early transcription had it, and a wrong setting): never to be shown
STALE_PRESET = "part3_imdb_torch_weightdrop"
STALE = {"published.source": "Part 3 (seed series), IMDB", "published.setting": "stale",
         "published.note": "stale note", "published.test.accuracy_std": "0.8458",
         "published.test.accuracy_mc": "0.844"}


def part3_primary() -> list[str]:
    """The primary comparisons the real part3 sweep declares (from its config file)."""
    return list(OmegaConf.load(CONF / "sweep" / "part3.yaml").study.primary)


def part3_study() -> tuple[dict[str, str], int]:
    """The equivalence margins and seed count the real part3 sweep declares (its file)."""
    study = OmegaConf.load(CONF / "sweep" / "part3.yaml").study
    return {k: str(v) for k, v in study.margin.items()}, int(study.seeds)


def _parent(client: MlflowClient, exp: str, sweep_id: str, preset: str, primary: str,
            margins: dict[str, str] | None = None, seeds: int = 0) -> str:
    return client.create_run(exp, run_name=f"sweep {preset} {sweep_id}", tags={
        "sweep_id": sweep_id, "sweep_preset": preset, "is_sweep_parent": "true",
        "sweep_jobs": "40", tracking.PRIMARY: primary,
        tracking.MARGINS: "\n".join(f"{k}={v}" for k, v in (margins or {}).items()),
        tracking.DECLARED_SEEDS: str(seeds)}).info.run_id


def _metrics(acc: float, seed: int, rng: np.random.Generator) -> list[Metric]:
    """History of an early-stopped run (best epoch 2-4, stopped 5 epochs later) and its final
    metrics at the best epoch; MC validation only at the best epoch."""
    best = 2 + seed % 3
    ran = best + 5
    now = int(time.time() * 1000)
    out = []
    for e in range(1, ran + 1):
        v = acc - 0.004 * abs(e - best) + rng.normal(0, 0.001)
        out += [Metric("train_loss", 0.6 / e, now, e), Metric("lr", 1e-3, now, e),
                Metric("epoch_seconds", 30 + rng.normal(0, 1), now, e),
                Metric("train_tokens_per_s", 9000 + rng.normal(0, 90), now, e),
                Metric("eval_seconds", 2.0, now, e), Metric("valid_accuracy_std", v, now, e),
                Metric("valid_log_loss_std", 1.2 - v + 0.01 * abs(e - best), now, e)]
    out += [Metric("valid_accuracy_mc", acc + 0.001, now, best),
            Metric("valid_log_loss_mc", 1.19 - acc, now, best)]
    final = {"best_epoch": best, "epochs_run": ran, "test_accuracy_std": acc,
             "test_accuracy_mc": acc + 0.0008 + rng.normal(0, 0.0005),
             "test_log_loss_std": 1.2 - acc, "test_log_loss_mc": 1.195 - acc}
    return out + [Metric(k, float(v), now, best) for k, v in final.items()]


def _run(client: MlflowClient, exp: str, parent: str, sweep_id: str, params: dict, tags: dict,
         acc: float, seed: int, rng: np.random.Generator) -> str:
    run = client.create_run(exp, tags={
        **tags, "seed": str(seed), "config_hash": f"{tags.get('preset', 'grid')}-{tags['variant']}"
        f"-{seed}", "completed": "true", "sweep_id": sweep_id, "mlflow.parentRunId": parent,
        "git_commit": "test", "select_on": params["train.select_on"]}).info.run_id
    items = [Param(k, str(v)) for k, v in sorted({**params, "seed": seed}.items())]
    assert len(items) <= 100  # one batch: MLflow's limit per call
    client.log_batch(run, metrics=_metrics(acc, seed, rng), params=items)
    client.set_terminated(run, "FINISHED")
    return run


def make(root: Path) -> dict:
    """Write the store under `root`; returns its uri, client, experiment and parent run ids."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking_store.ensure_store(uri)
    client = MlflowClient(uri)
    exp = tracking.experiment_id(client, "imdb", uri)
    rng = np.random.default_rng(13)
    seed_effect = {s: rng.normal(0, 0.004) for s in SEEDS}  # shared by every arm of a seed
    primary = "\n".join(part3_primary())
    margins, seeds = part3_study()
    parents = {"a": _parent(client, exp, "p3-a", "part3", primary, margins, seeds),
               "b": _parent(client, exp, "p3-b", "part3", primary, margins, seeds),
               "grid": _parent(client, exp, "grid-1", "imdb_grid", GRID_PRIMARY)}
    for preset, acc in TRUE.items():
        cfg = compose_cfg([f"preset={preset}", *SWEEP])
        params = C.flatten(cfg)
        tags = {"task": "imdb", "framework": cfg.framework.name.value,
                "variant": cfg.dropout.variant.value, "preset": preset}
        for seed in SEEDS:
            key = "a" if seed < 3 else "b"
            logged = {**params, **STALE} if preset == STALE_PRESET and key == "a" else params
            _run(client, exp, parents[key], f"p3-{key}", logged, tags,
                 acc + seed_effect[seed] + rng.normal(0, 0.0015), seed, rng)
    for variant, acc in GRID.items():
        params = C.flatten(compose_cfg([*GRID_SETTING, f"variant={variant}"]))
        tags = {"task": "imdb", "framework": "torch", "variant": variant}
        for seed in SEEDS:
            _run(client, exp, parents["grid"], "grid-1", params, tags,
                 acc + seed_effect[seed] + rng.normal(0, 0.0015), seed, rng)
    for run_id in parents.values():
        for key, value in (("finished", 40), ("skipped", 0), ("failed", 0)):
            client.set_tag(run_id, f"sweep_{key}", str(value))
        client.set_terminated(run_id, "FINISHED")
    return {"uri": uri, "client": client, "exp": exp, "parents": parents}
