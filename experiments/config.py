"""Structured-config schema: Hydra rejects misspelled keys, wrong types and unknown enum values
(naming the key) before anything runs; `to_spec` adds the cross-field checks of `ModelSpec`."""

from __future__ import annotations

import enum
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from experiments import tuned
from experiments.metrics import METRICS
from experiments.tasks import TASK_KINDS
from frameworks import rules, variants
from frameworks.compute import Compute
from frameworks.spec import (
    Cell,
    Granularity,
    Init,
    ModelSpec,
    OptimSpec,
    OutputMode,
    SpecError,
    TaskKind,
    Variant,
    check_framework_variant,
)


# Member names equal values: OmegaConf validates enum strings by member name.
class TaskName(str, enum.Enum):
    ptb = "ptb"
    imdb = "imdb"
    rt = "rt"


def _choices(name: str, values: tuple[str, ...], doc: str) -> type[enum.Enum]:
    """A str enum of names kept elsewhere (the registry, frameworks/rules.py), member names
    equal to values as OmegaConf wants."""
    cls = enum.Enum(name, [(v, v) for v in values], type=str, module=__name__, qualname=name)
    cls.__doc__ = doc
    return cls


FrameworkName = _choices("FrameworkName", variants.FRAMEWORKS,
                         "framework.name: the frameworks of the registry.")


class Optimizer(str, enum.Enum):
    sgd = "sgd"
    adam = "adam"


@dataclass
class TaskConfig:
    name: TaskName = TaskName.rt
    batch_size: int = 64
    maxlen: int = 50  # classifiers: tokens kept per example (pre-padded)
    bptt: int = 35  # language model: unroll length
    vocab_size: int | None = 20000  # classifiers; ptb has its fixed 10k vocabulary
    train_limit: int | None = None  # keep the first N train examples (ptb: tokens)
    eval_limit: int | None = None  # same for valid and test
    split_seed: int = 1234


@dataclass
class ModelConfig:
    size: str = "small"
    embed_size: int = 64
    hidden_size: int = 64
    num_layers: int | None = None  # null: 2 for the language model, 1 for classifiers
    tie_weights: bool = False
    init_scale: float = 0.1  # model.init=uniform only
    init: Init = Init.uniform  # uniform | keras | torch: frameworks/init.py
    cell: Cell = Cell.lstm


@dataclass
class DropoutConfig:
    """dropout.*: the variant, one rate per rate of the registry (frameworks/variants.py RATES,
    in its order; a rate the variant does not use must stay 0), then the knobs (KNOBS; a
    non-default value only for the variants that allow it). docs/SEMANTICS.md has the
    equations. Not frozen: Hydra merges the config files and the command line into it."""

    variant: Variant = Variant.none
    embedding: float = 0.0  # rows of the embedding matrix: whole word types
    input: float = 0.0  # each layer's input (the embedding's output, between layers)
    recurrent: float = 0.0  # h_{t-1} (the Gal family), the candidate update (Semeniuta)
    output: float = 0.0  # the last layer's output, before the decoder
    weight: float = 0.0  # DropConnect on weight_hh (the WeightDrop forms)
    zoneout_cell: float = 0.0  # zoneout: a unit of c keeps its previous value
    zoneout_hidden: float = 0.0  # zoneout: a unit of h keeps its previous value
    granularity: Granularity = Granularity.sample  # a mask per sequence or per minibatch
    output_mode: OutputMode = OutputMode.variational  # or Keras' plain Dropout (naive)
    eval_active: bool = False  # awd-lstm's row mask, always on (weightdrop_variational)
    per_step: bool = False  # semeniuta: a fresh candidate mask per step


# A backend's paths, fastest first (frameworks/<backend>/compute.py): auto, the fastest that
# computes the call, or one path's loop by name; the names: frameworks/rules.py LOOPS.
TorchLoop = _choices("TorchLoop", rules.LOOPS["torch"], "framework.torch_loop: cpp (the "
                     "compiled loop), eager (the autograd loop of cells.py), or auto.")
KerasLoop = _choices("KerasLoop", rules.LOOPS["keras"], "framework.keras_loop: cpp (the "
                     "compiled op), bptt (the loop in the runner's tf.function), or auto.")


@dataclass
class FrameworkConfig:
    name: FrameworkName = FrameworkName.torch
    # how PyTorch computes, not what (frameworks/torch_backend/compute.py): outside the hash
    torch_loop: TorchLoop = TorchLoop(rules.AUTO)
    torch_compile: bool = False  # the autograd loop through torch.compile (loop auto or eager)
    # how Keras computes (frameworks/keras_backend/compute.py): outside the hash
    keras_loop: KerasLoop = KerasLoop(rules.AUTO)


@dataclass
class TrainConfig:
    epochs: int = 5
    optimizer: Optimizer = Optimizer.adam
    lr: float = 1e-3
    lr_decay: float = 1.0  # multiply lr by this after every epoch past `decay_start`
    decay_start: int = 0
    clip_norm: float = 0.0
    weight_decay: float = 0.0
    mc_samples: int = 10
    device: str = "cpu"
    threads: int = 0  # 0: the machine's cores divided by the parallel jobs
    init_from: str | None = None  # run id or .npz of initial weights
    patience: int = 0  # stop after this many epochs without a better selection metric; 0: off
    select_on: str | None = None  # validation metric that picks the best epoch; null: the task's
    mc_every: int = 1  # MC-validate every N epochs; 0: only the selected epoch, after training


@dataclass
class TrackingConfig:
    uri: str | None = None  # null: $MLFLOW_TRACKING_URI or sqlite:///<repo>/results/mlflow.db
    experiment: str | None = None  # null: the task name
    force: bool = False  # rerun even when a completed run of the same config exists
    parent_run_id: str | None = None


@dataclass
class StudyConfig:
    """What a sweep preset asks: its primary comparisons ("A vs B", each side a preset name or
    framework/variant), Holm-corrected as one family by the report (every other pair is
    exploratory), and which arms of its grid it runs."""

    primary: list[str] = field(default_factory=list)
    # the framework/variant pairs a grid runs (empty: every pair both the grid and the framework
    # have); the others are skipped, as pairs a framework lacks are
    arms: list[str] = field(default_factory=list)
    # metric -> equivalence margin of the primary questions, declared before the first run: an
    # absolute one in the metric's units ("0.005": 0.5 pp of accuracy) or a relative one ("2%"
    # of B's mean, for perplexity); a question within it is "equivalent", else undecided
    margin: dict[str, str] = field(default_factory=dict)
    # the seed count fixed before the first run (0: not declared); the report flags more runs
    seeds: int = 0


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    framework: FrameworkConfig = field(default_factory=FrameworkConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    seed: int = 0


def register() -> None:
    ConfigStore.instance().store(name="schema", node=Config)
    if not OmegaConf.has_resolver("rds_parallel_jobs"):
        OmegaConf.register_new_resolver("rds_parallel_jobs", parallel_jobs)
    if not OmegaConf.has_resolver("tuned"):  # a study's tuned rate (experiments/tuned.py)
        OmegaConf.register_new_resolver("tuned", tuned.resolver)


def parallel_jobs() -> int:
    """Jobs a machine holds side by side: one per core, at most one per 3 GiB of memory
    (a TensorFlow job with MC evaluation peaks near 2 GiB)."""
    import psutil

    cores = os.cpu_count() or 1
    return max(1, min(cores, psutil.virtual_memory().total // (3 * 2**30)))


def config_hash(cfg: DictConfig) -> str:
    """The identity of what a run computes, for resume: the resolved config without the keys
    that do not change the numbers, and without a key added later at the value that
    reproduces the runs logged before it (both lists: frameworks/rules.py)."""
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for dotted in rules.NON_SEMANTIC:
        _pop(plain, dotted)
    for dotted, neutral in rules.ADDED_LATER.items():
        _pop(plain, dotted, only_if=neutral)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


_ANY = object()


def _pop(plain: dict, dotted: str, only_if: Any = _ANY) -> None:
    *parents, leaf = dotted.split(".")
    node = plain
    for p in parents:
        node = node.get(p, {})
    if leaf in node and (only_if is _ANY or node[leaf] == only_if):
        del node[leaf]


def flatten(cfg: DictConfig) -> dict[str, Any]:
    """Dotted keys of the resolved config, for MLflow params."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), "")
    return out


DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


MARGIN = re.compile(r"^(\d+(\.\d*)?|\.\d+)(e-?\d+)?%?$")


def check_study(study) -> None:
    """A sweep's declared margins and seed count, checked before anything runs: a margin is a
    positive number in the metric's units or a percentage of B's mean, for a metric the suite
    computes."""
    from experiments.metrics import HIGHER_IS_BETTER

    for metric, value in (study.margin or {}).items():
        if metric not in HIGHER_IS_BETTER:
            raise SpecError(f"study.margin.{metric}: not a metric; allowed: "
                            f"{', '.join(sorted(HIGHER_IS_BETTER))}")
        text = str(value).strip()
        if not MARGIN.match(text) or float(text.rstrip("%")) <= 0:
            raise SpecError(f"study.margin.{metric}={value!r} must be a positive number in the "
                            "metric's units (0.005 = 0.5 pp of accuracy) or a percentage of B's "
                            "mean (2%)")
    if study.seeds < 0:
        raise SpecError(f"study.seeds={study.seeds} must be >= 0 (0: not declared)")


def validate(cfg: DictConfig) -> None:
    """Cross-field checks Hydra's schema cannot express; raise SpecError naming the key."""
    unknown_keys(cfg, OmegaConf.structured(Config))
    t, tr, m = cfg.task, cfg.train, cfg.model
    for key, value, low in (
        ("task.batch_size", t.batch_size, 1),
        ("task.maxlen", t.maxlen, 1),
        ("task.bptt", t.bptt, 1),
        ("model.num_layers", m.num_layers, 1),
        ("train.epochs", tr.epochs, 1),
        ("train.mc_samples", tr.mc_samples, 1),
        ("train.patience", tr.patience, 0),
        ("train.mc_every", tr.mc_every, 0),
        ("train.threads", tr.threads, 0),
        ("train.decay_start", tr.decay_start, 0),
        ("seed", cfg.seed, 0),
    ):
        if value is not None and value < low:
            raise SpecError(f"{key}={value} must be >= {low}")
    if cfg.seed >= 2**32:
        raise SpecError(f"seed={cfg.seed} must be < 2**32 (a numpy seed)")
    for key in ("lr", "clip_norm", "weight_decay", "lr_decay"):
        if not math.isfinite(tr[key]):
            raise SpecError(f"train.{key}={tr[key]} must be a finite number")
    for key in ("lr", "clip_norm", "weight_decay"):
        if tr[key] < 0:
            raise SpecError(f"train.{key}={tr[key]} must be >= 0")
    if not 0 < tr.lr_decay <= 1:
        raise SpecError(f"train.lr_decay={tr.lr_decay} must be in (0, 1]")
    if not DEVICE.match(tr.device):
        raise SpecError(f"train.device={tr.device!r} is not one of: cpu, cuda, cuda:N")
    check_study(cfg.study)
    check_framework_variant(cfg.framework.name.value, cfg.dropout.variant)
    compute_options(cfg)
    selection(cfg)


def compute_options(cfg: DictConfig) -> Compute:
    """The Runner's compute settings; one framework's switch on the other is refused (it would
    be logged without having had an effect), as is torch.compile with a loop it does not run."""
    fw = cfg.framework
    name = fw.name.value
    for framework, switches in rules.SWITCHES.items():
        if framework == name:
            continue
        for key, default in switches.items():
            value = getattr(fw[key], "value", fw[key])
            if value != default:
                raise SpecError(f"framework.{key}={value} has no effect with framework="
                                f"{name}; it is a {framework} switch")
    if name == "keras":
        return Compute(fw.keras_loop.value)
    if fw.torch_compile and fw.torch_loop.value not in rules.COMPILE_LOOPS:
        raise SpecError(f"framework.torch_loop={fw.torch_loop.value} with "
                        "framework.torch_compile=true: torch.compile runs the autograd loop; "
                        f"allowed: {', '.join(rules.COMPILE_LOOPS)}")
    return Compute(fw.torch_loop.value, bool(fw.torch_compile))


def unknown_keys(cfg: DictConfig, schema: DictConfig, prefix: str = "") -> None:
    """Refuse keys the schema lacks. Hydra refuses `train.epoch=3`, but `+train.epoch=3` (the
    fix its own error message suggests) would add the typo and train with the default."""
    for key in cfg:
        if key == "hydra":
            continue
        if key not in schema:
            allowed = ", ".join(str(k) for k in schema)
            raise SpecError(f"{prefix}{key} is not a config key; keys here: {allowed}")
        child, expected = cfg[key], OmegaConf.select(schema, str(key), throw_on_missing=False)
        is_dataclass_node = isinstance(expected, DictConfig) and \
            OmegaConf.get_type(expected) is not dict
        if isinstance(child, DictConfig) and is_dataclass_node:
            unknown_keys(child, expected, f"{prefix}{key}.")


def selection(cfg: DictConfig) -> tuple[str, bool]:
    """(metric, higher_is_better) that picks the best epoch: `train.select_on` or the task's
    first metric."""
    metrics = METRICS[TASK_KINDS[cfg.task.name.value]]
    name = cfg.train.select_on or next(iter(metrics))
    if name not in metrics:
        raise SpecError(f"train.select_on={name!r} is not a metric of task "
                        f"{cfg.task.name.value}; allowed: {', '.join(metrics)}")
    return name, metrics[name]


def spec_args(cfg: DictConfig) -> dict[str, Any]:
    """Every `ModelSpec` argument but the data's sizes (known once the data is loaded)."""
    kind = TASK_KINDS[cfg.task.name.value]
    d = cfg.dropout
    return dict(
        task_kind=kind,
        embed_size=cfg.model.embed_size,
        hidden_size=cfg.model.hidden_size,
        num_layers=cfg.model.num_layers or (2 if kind is TaskKind.LANGUAGE_MODEL else 1),
        variant=d.variant,
        rates={rate: d[rate] for rate in variants.RATES},
        granularity=d.granularity,
        output_mode=d.output_mode,
        eval_active=d.eval_active,
        per_step=d.per_step,
        cell=cfg.model.cell,
        tie_weights=cfg.model.tie_weights,
        init_scale=cfg.model.init_scale,
        init=cfg.model.init,
    )


def to_spec(cfg: DictConfig, vocab_size: int, num_outputs: int) -> ModelSpec:
    return ModelSpec(vocab_size=vocab_size, num_outputs=num_outputs, **spec_args(cfg))


def to_optim(cfg: DictConfig) -> OptimSpec:
    tr = cfg.train
    return OptimSpec(name=tr.optimizer.value, clip_norm=tr.clip_norm, weight_decay=tr.weight_decay)
