"""The frozen plan of one run: the composed Hydra config, Hydra's runtime and the environment
turned, once, at the start of a run, into typed values (task, model settings, optimiser,
schedule, tracking, compute, threads).

Why: the DictConfig is loosely typed and mutable; reading it deep in the code spreads the config's
layout over many modules and lets a late reader see a value the checks never saw. The same holds
for what arrives beside it: the preset Hydra composed, the command line's overrides, and what a
sweep's launching process hands its jobs through the environment (parent run, sweep id, parallel
jobs, experiments/launch.py) or SLURM does. `make` runs the config's checks and reads all of
them; nothing below it reads the DictConfig, HydraConfig or os.environ for the run
(`experiments/run.py`, `experiments/weights.py`, tracking, the data and the backends take plan
fields). The sweep checks every job up front through `make` too (experiments/sweep_jobs.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments import config as C
from experiments import launch, run_names, tracking_store, tuned
from experiments import tracking as T
from experiments.tasks import TASK_KINDS
from frameworks.compute import Compute
from frameworks.spec import ModelSpec, OptimSpec, TaskKind


@dataclass(frozen=True)
class DataPlan:
    name: str
    kind: TaskKind
    batch_size: int
    bptt: int
    vocab_size: int | None
    maxlen: int
    train_limit: int | None
    eval_limit: int | None
    split_seed: int


@dataclass(frozen=True)
class Schedule:
    """Epochs, learning rate per epoch, model selection and evaluation cost."""

    epochs: int
    lr: float
    lr_decay: float
    decay_start: int
    patience: int
    select_on: str
    higher_is_better: bool
    mc_every: int
    mc_samples: int

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based `epoch`: constant until `decay_start`, then decayed."""
        return self.lr * self.lr_decay ** max(0, epoch - self.decay_start)


@dataclass(frozen=True)
class TrackingPlan:
    """Where the run is logged and what names and tags it carries beyond its params."""

    uri: str  # tracking.uri, else $MLFLOW_TRACKING_URI, else the default store
    experiment: str
    force: bool
    parent_run_id: str | None  # tracking.parent_run_id, else the sweep's parent run, if any
    sweep_id: str | None  # the sweep this run is a job of
    preset: str | None  # the `preset=` Hydra composed (tag `preset`)
    run_name: str  # framework/variant/task/s<seed>, then what the sweep varies
    slurm: Mapping[str, str]  # SLURM's job ids (tracking.SLURM_VARIABLES), lower-case
    tuned_from: str = ""  # keys a study's earlier stage chose (tag tuned_from; experiments/tuned)


@dataclass(frozen=True)
class Invocation:
    """What Hydra's runtime says of one run: the preset it composed and its command-line
    overrides (its name shows the ones its sweep varies)."""

    preset: str | None = None
    overrides: tuple[str, ...] = ()


def invocation() -> Invocation:
    """The running Hydra app's (nothing outside one: a config composed by hand)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return Invocation()
    hc = HydraConfig.get()
    preset = hc.runtime.choices.get("preset")
    return Invocation(preset if preset and preset != "null" else None, tuple(hc.overrides.task))


@dataclass(frozen=True)
class RunPlan:
    framework: str
    variant: str
    seed: int
    data: DataPlan
    optim: OptimSpec
    schedule: Schedule
    tracking: TrackingPlan
    threads: int  # train.threads, else SLURM's cores, else the cores per parallel job
    device: str
    compute: Compute  # how the Runner computes (outside the config hash)
    init_from: str | None
    config_hash: str
    params: dict[str, Any]  # every config key, flattened: what MLflow logs as params
    yaml: str  # the resolved config, logged as an artifact
    spec_args: MappingProxyType  # ModelSpec's arguments but the data's sizes

    def spec(self, vocab_size: int, num_outputs: int) -> ModelSpec:
        """The model spec once the data's sizes are known (validated on creation)."""
        return ModelSpec(vocab_size=vocab_size, num_outputs=num_outputs, **self.spec_args)


def experiment(cfg: DictConfig) -> str:
    """The MLflow experiment a config's run logs to: `tracking.experiment`, else the task."""
    return cfg.tracking.experiment or cfg.task.name.value


def threads(asked: int, environ: Mapping[str, str], parallel_jobs: int) -> int:
    """`train.threads`, else the cores SLURM gave this task, else this machine's cores divided
    by the jobs the sweep runs side by side."""
    if asked > 0:
        return asked
    if environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return max(1, int(environ["SLURM_CPUS_PER_TASK"]))
    return max(1, (os.cpu_count() or 1) // parallel_jobs)


def make(cfg: DictConfig, hydra: Invocation | None = None,
         environ: Mapping[str, str] | None = None) -> RunPlan:
    """Check the config (SpecError naming the key) and freeze it, with Hydra's runtime (`hydra`,
    read from the running app when None) and the environment (os.environ when None), into a
    plan."""
    C.validate(cfg)
    hydra = invocation() if hydra is None else hydra
    environ = os.environ if environ is None else environ
    sweep = launch.received(environ)
    t, tr, tk = cfg.task, cfg.train, cfg.tracking
    name, higher = C.selection(cfg)
    framework, variant, seed = cfg.framework.name.value, cfg.dropout.variant.value, int(cfg.seed)
    logged_to = experiment(cfg)
    return RunPlan(
        framework=framework,
        variant=variant,
        seed=seed,
        data=DataPlan(t.name.value, TASK_KINDS[t.name.value], t.batch_size, t.bptt,
                      t.vocab_size, t.maxlen, t.train_limit, t.eval_limit, t.split_seed),
        optim=C.to_optim(cfg),
        schedule=Schedule(tr.epochs, tr.lr, tr.lr_decay, tr.decay_start, tr.patience, name,
                          higher, tr.mc_every, tr.mc_samples),
        tracking=TrackingPlan(
            uri=tk.uri or tracking_store.default_uri(environ), experiment=logged_to,
            force=bool(tk.force),
            parent_run_id=tk.parent_run_id or sweep.parent(logged_to), sweep_id=sweep.sweep_id,
            preset=hydra.preset,
            run_name=run_names.run_name(framework, variant, t.name.value, seed, hydra.overrides,
                                sweep.axes, hydra.preset),
            slurm=MappingProxyType({v.lower(): environ[v] for v in T.SLURM_VARIABLES
                                    if v in environ}),
            tuned_from=tuned.tag(tuned.asked(cfg))),
        threads=threads(tr.threads, environ, sweep.parallel_jobs),
        device=tr.device,
        compute=C.compute_options(cfg),
        init_from=tr.init_from,
        config_hash=C.config_hash(cfg),
        params=C.flatten(cfg),
        yaml=OmegaConf.to_yaml(cfg, resolve=True),
        spec_args=MappingProxyType(C.spec_args(cfg)),
    )
