"""The frozen plan of one run: the composed Hydra config turned, once, at the start of a run,
into typed values (task, model settings, optimiser, schedule, tracking, compute).

Why: the DictConfig is loosely typed and mutable; reading it deep in the code spreads the config's
layout over many modules and lets a late reader see a value the checks never saw. `make` runs the
config's checks and reads every key the run needs; nothing below `experiments/run.py` reads the
DictConfig (`experiments/weights.py`, the data and the backends take plan fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments import config as C
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
    uri: str | None  # None: $MLFLOW_TRACKING_URI or the default store (tracking.resolve_uri)
    experiment: str
    force: bool
    parent_run_id: str | None


@dataclass(frozen=True)
class RunPlan:
    framework: str
    variant: str
    seed: int
    data: DataPlan
    optim: OptimSpec
    schedule: Schedule
    tracking: TrackingPlan
    threads: int  # 0: decided at run time from SLURM or the sweep's parallel jobs
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


def make(cfg: DictConfig) -> RunPlan:
    """Check the config (SpecError naming the key) and freeze it into a plan."""
    C.validate(cfg)
    t, tr, tk = cfg.task, cfg.train, cfg.tracking
    name, higher = C.selection(cfg)
    return RunPlan(
        framework=cfg.framework.name.value,
        variant=cfg.dropout.variant.value,
        seed=int(cfg.seed),
        data=DataPlan(t.name.value, TASK_KINDS[t.name.value], t.batch_size, t.bptt,
                      t.vocab_size, t.maxlen, t.train_limit, t.eval_limit, t.split_seed),
        optim=C.to_optim(cfg),
        schedule=Schedule(tr.epochs, tr.lr, tr.lr_decay, tr.decay_start, tr.patience, name,
                          higher, tr.mc_every, tr.mc_samples),
        tracking=TrackingPlan(tk.uri, tk.experiment or t.name.value, bool(tk.force),
                              tk.parent_run_id),
        threads=tr.threads,
        device=tr.device,
        compute=C.compute_options(cfg),
        init_from=tr.init_from,
        config_hash=C.config_hash(cfg),
        params=C.flatten(cfg),
        yaml=OmegaConf.to_yaml(cfg, resolve=True),
        spec_args=MappingProxyType(C.spec_args(cfg)),
    )
