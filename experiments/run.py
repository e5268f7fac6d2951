"""One training run, framework-neutral: validate, load data, train, evaluate, log to MLflow.

Only `load_backend` touches a framework, and only after every check has passed, so bad input is
refused in seconds and a failed or killed run never looks like a result.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from experiments import config as C
from experiments import tracking
from experiments.batching import batches, num_batches
from experiments.metrics import (
    BEST_EPOCH,
    EPOCH_SECONDS,
    EPOCHS_RUN,
    EVAL_SECONDS,
    LR,
    MC,
    STD,
    TRAIN_LOSS,
    TRAIN_TOKENS_PER_S,
    compute,
    mode_key,
    split_keys,
)
from experiments.sweep import ENV_SWEEP_ID
from experiments.sweep import parent_run_id as sweep_parent
from experiments.tasks import DataError, TaskData, load_task
from experiments.weights import load_initial_weights
from frameworks import variants
from frameworks.base import DivergenceError, load_backend
from frameworks.spec import Batch, ModelSpec, SpecError, TaskKind


@dataclass
class RunResult:
    run_id: str | None
    status: str  # FINISHED | SKIPPED
    metrics: dict[str, float]


@dataclass
class Prepared:
    """Everything checked and loaded before a framework is imported."""

    cfg: DictConfig
    data: TaskData
    spec: ModelSpec
    weights: dict[str, np.ndarray]
    uri: str
    config_hash: str


def prepare(cfg: DictConfig) -> Prepared:
    """All validation that can fail, before any training or framework import."""
    C.validate(cfg)
    uri = tracking.resolve_uri(cfg.tracking.uri)
    t = cfg.task
    data = load_task(
        t.name.value,
        vocab_size=t.vocab_size,
        maxlen=t.maxlen,
        train_limit=t.train_limit,
        eval_limit=t.eval_limit,
        split_seed=t.split_seed,
    )
    for split in ("train", "valid", "test"):
        if num_batches(data, split, t.batch_size, t.bptt) < 1:
            key = "train_limit" if split == "train" else "eval_limit"
            raise DataError(
                f"the {split} split of task {t.name.value} gives no batch with "
                f"batch_size={t.batch_size}, bptt={t.bptt}: raise task.{key} or lower the sizes"
            )
    spec = C.to_spec(cfg, data.vocab_size, data.num_outputs)
    weights = load_initial_weights(cfg, spec, uri)
    return Prepared(cfg, data, spec, weights, uri, C.config_hash(cfg))


def has_dropout(spec: ModelSpec) -> bool:
    """Whether any rate the variant uses (frameworks/variants.py) is non-zero."""
    return any(spec.rate(r) > 0 for r in variants.rates(spec.variant))


def evaluate(runner, prep: Prepared, split: str, mc: bool = True) -> dict[str, float]:
    """Standard (deterministic) and, with `mc`, MC-dropout metrics of one split. MC averages
    the probabilities of `mc_samples` stochastic passes; a model without dropout gets one pass,
    which equals the standard one."""
    cfg, data, kind = prep.cfg, prep.data, prep.spec.task_kind
    labels = None if kind is TaskKind.LANGUAGE_MODEL else data.splits[split][1]

    def split_batches() -> Iterator[Batch]:
        return batches(data, split, cfg.task.batch_size, cfg.task.bptt)

    out = {mode_key(k, STD): v for k, v in compute(kind, runner.predict(split_batches(), False),
                                                   labels).items()}
    if not mc:
        return out
    samples = cfg.train.mc_samples if has_dropout(prep.spec) else 1
    mean = runner.predict(split_batches(), True).astype(np.float64)
    for _ in range(samples - 1):
        mean += runner.predict(split_batches(), True)
    out.update({mode_key(k, MC): v for k, v in compute(kind, mean / samples, labels).items()})
    return out


def thread_count(cfg: DictConfig) -> int:
    """`train.threads`, else the cores SLURM gave this task, else this machine's cores divided
    by the parallel jobs of the sweep."""
    if cfg.train.threads > 0:
        return cfg.train.threads
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return max(1, int(os.environ["SLURM_CPUS_PER_TASK"]))
    jobs = max(1, int(os.environ.get("RDS_PARALLEL_JOBS", "1")))
    return max(1, (os.cpu_count() or 1) // jobs)


class _Counter:
    """Counts the tokens of the batches it passes through (for tokens/s)."""

    def __init__(self, it: Iterator[Batch]):
        self.it, self.tokens = it, 0

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.it:
            self.tokens += batch.x.size
            yield batch


def execute(cfg: DictConfig, prep: Prepared | None = None) -> RunResult:
    """Validate, then train and log one run (or skip it when it already completed). A caller
    that ran `prepare` itself (to tell bad input from a failed run) passes its result."""
    from mlflow.tracking import MlflowClient

    prep = prepare(cfg) if prep is None else prep
    tracking.ensure_store(prep.uri)
    client = MlflowClient(prep.uri)
    task, framework = cfg.task.name.value, cfg.framework.name.value
    with tracking.store_errors(prep.uri):
        exp_id = tracking.experiment_id(client, cfg.tracking.experiment or task, prep.uri)
    if not cfg.tracking.force:
        done = tracking.find_completed(client, exp_id, prep.config_hash)
        if done is not None:
            print(f"skip: config {prep.config_hash} already completed as run {done.info.run_id}")
            return RunResult(done.info.run_id, "SKIPPED", {})

    backend = load_backend(framework)
    try:
        backend.configure_threads(thread_count(cfg))
    except RuntimeError as e:  # a second run in one process: TensorFlow's pools are fixed
        warnings.warn(f"{e}; this run keeps the running thread pools", stacklevel=2)
    if not backend.device_available(cfg.train.device):
        raise SpecError(f"train.device={cfg.train.device}: {framework} sees no such device on "
                        "this machine; use train.device=cpu")
    backend.configure_compute(**C.compute_options(cfg))
    runner = backend.Runner(prep.spec, C.to_optim(cfg), cfg.seed, cfg.train.device)
    runner.load_weights(prep.weights)

    parent = cfg.tracking.parent_run_id or sweep_parent(cfg.tracking.experiment or task)
    run_id = tracking.open_training_run(
        client, exp_id, prep.uri, task=task, framework=framework,
        variant=cfg.dropout.variant.value, seed=cfg.seed, config_hash=prep.config_hash,
        select_on=C.selection(cfg)[0], parent=parent, sweep_id=os.environ.get(ENV_SWEEP_ID))
    try:
        _terminate_on_sigterm()
        _log_params(client, run_id, cfg, runner)
        metrics = _train(client, run_id, prep, runner)
    except BaseException as e:
        status = "KILLED" if isinstance(e, KeyboardInterrupt | SystemExit) else "FAILED"
        reason = _reason(e)
        tracking.end_run(client, run_id, status, f"{type(e).__name__}: {reason}")
        e.add_note(f"run {run_id} marked {status}")  # the CLI's one line names the run
        raise
    tracking.complete_run(client, run_id)
    return RunResult(run_id, "FINISHED", metrics)


def _reason(e: BaseException) -> str:
    """What ended a run, in words: a signal by name rather than `SystemExit: 143`."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(e, SystemExit) and isinstance(e.code, int) and e.code > 128:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(e.code - 128).name} (exit {e.code})"
    return str(e)


def _terminate_on_sigterm() -> None:
    """Turn SIGTERM (scancel, timeouts, `kill`) into an exception so the run is marked KILLED;
    SIGKILL cannot be caught: such a run stays RUNNING and the next attempt supersedes it."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _log_params(client, run_id: str, cfg: DictConfig, runner) -> None:
    tracking.log_config(client, run_id, C.flatten(cfg), thread_count(cfg),
                        OmegaConf.to_yaml(cfg, resolve=True))


def _train(client, run_id: str, prep: Prepared, runner) -> dict[str, float]:
    """Train epoch by epoch, validate each epoch, keep the weights of the best validation
    score (`train.select_on`), stop after `train.patience` epochs without improvement, and
    evaluate the test split once with the kept weights. MC validation runs every
    `train.mc_every` epochs (it draws from the evaluation stream only, so skipping it changes
    no training step) and always at the selected epoch."""
    cfg, data = prep.cfg, prep.data
    t, tr = cfg.task, cfg.train
    name, higher = C.selection(cfg)
    best: tuple[float, int, dict[str, np.ndarray], bool] | None = None
    stale = 0
    n_train = num_batches(data, "train", t.batch_size, t.bptt)
    for epoch in tqdm(range(1, tr.epochs + 1), desc="epochs", disable=None):
        lr = C.epoch_lr(cfg, epoch)
        counter = _Counter(batches(data, "train", t.batch_size, t.bptt, (cfg.seed, epoch)))
        bar = tqdm(counter, total=n_train, desc=f"epoch {epoch}", leave=False, disable=None)
        start = time.perf_counter()
        try:
            loss = runner.train_epoch(bar, lr)
        except DivergenceError as e:
            raise DivergenceError(f"epoch {epoch}: {e}") from e
        seconds = time.perf_counter() - start
        if not np.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss} in epoch {epoch}")
        start = time.perf_counter()
        with_mc = tr.mc_every > 0 and epoch % tr.mc_every == 0
        valid = evaluate(runner, prep, "valid", mc=with_mc)
        values = {
            TRAIN_LOSS: loss, LR: lr, EPOCH_SECONDS: seconds,
            TRAIN_TOKENS_PER_S: counter.tokens / max(seconds, 1e-9),
            EVAL_SECONDS: time.perf_counter() - start,
            **split_keys("valid", valid),
        }
        _log(client, run_id, values, epoch)
        if not sys.stderr.isatty():  # logs of background runs and sweep jobs get a line per epoch
            shown = ", ".join(f"{k} {v:.4g}" for k, v in valid.items())
            print(f"epoch {epoch}/{tr.epochs}: train_loss {loss:.4f}, {shown} "
                  f"({seconds:.0f}s)", file=sys.stderr, flush=True)
        score = valid[mode_key(name, STD)]
        if best is None or (score > best[0] if higher else score < best[0]):
            best, stale = (score, epoch, runner.export_weights(), with_mc), 0
        else:
            stale += 1
            if tr.patience and stale >= tr.patience:
                print(f"early stop after epoch {epoch}: no better valid {name} for {stale} "
                      f"epochs (best epoch {best[1]})", file=sys.stderr, flush=True)
                break
    assert best is not None
    _, best_epoch, weights, has_mc = best
    runner.load_weights(weights)
    if not has_mc:
        valid = evaluate(runner, prep, "valid")
        _log(client, run_id, split_keys("valid", {k: v for k, v in valid.items()
                                                  if k.endswith(f"_{MC}")}), best_epoch)
    test = split_keys("test", evaluate(runner, prep, "test"))
    final = {BEST_EPOCH: float(best_epoch), EPOCHS_RUN: float(epoch), **test}
    _log(client, run_id, final, best_epoch)
    return final


def _log(client, run_id: str, values: dict[str, float], step: int) -> None:
    tracking.log_metrics(client, run_id, values, step)
