"""One training run, framework-neutral: validate, load data, train, evaluate, log to MLflow.

Only `load_backend` touches a framework, and only after every check has passed, so bad input is
refused in seconds and a failed or killed run never looks like a result.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig
from tqdm.auto import tqdm

from experiments import plan as P
from experiments import tracking, tracking_store
from experiments.batching import batches, num_batches
from experiments.metrics import (
    BEST_EPOCH,
    EPOCH_CPU_SECONDS,
    EPOCH_SECONDS,
    EPOCHS_RUN,
    EVAL_CPU_SECONDS,
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

    plan: P.RunPlan
    data: TaskData
    spec: ModelSpec
    weights: dict[str, np.ndarray]
    uri: str

    @property
    def config_hash(self) -> str:
        return self.plan.config_hash


def prepare(cfg: DictConfig) -> Prepared:
    """All validation that can fail, before any training or framework import. The config,
    Hydra's runtime and the environment are read here, once, into the run's frozen plan
    (`plan.make`); nothing later reads them."""
    plan = P.make(cfg)
    uri = tracking_store.resolve_uri(plan.tracking.uri)
    t = plan.data
    data = load_task(
        t.name,
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
                f"the {split} split of task {t.name} gives no batch with "
                f"batch_size={t.batch_size}, bptt={t.bptt}: raise task.{key} or lower the sizes"
            )
    spec = plan.spec(data.vocab_size, data.num_outputs)
    weights = load_initial_weights(plan, spec, uri)
    return Prepared(plan, data, spec, weights, uri)


def has_dropout(spec: ModelSpec) -> bool:
    """Whether any rate the variant uses (frameworks/variants.py) is non-zero."""
    return any(spec.rate(r) > 0 for r in variants.rates(spec.variant))


def evaluate(runner, prep: Prepared, split: str, mc: bool = True,
             keep: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Standard (deterministic) and, with `mc`, MC-dropout metrics of one split. MC averages
    the probabilities of `mc_samples` stochastic passes; a model without dropout gets one pass,
    which equals the standard one. `keep` receives each mode's probabilities ({mode: array})."""
    t, data, kind = prep.plan.data, prep.data, prep.spec.task_kind
    labels = None if kind is TaskKind.LANGUAGE_MODEL else data.splits[split][1]

    def split_batches() -> Iterator[Batch]:
        return batches(data, split, t.batch_size, t.bptt)

    probs = runner.predict(split_batches(), False)
    out = {mode_key(k, STD): v for k, v in compute(kind, probs, labels).items()}
    if keep is not None:
        keep[STD] = probs
    if not mc:
        return out
    samples = prep.plan.schedule.mc_samples if has_dropout(prep.spec) else 1
    mean = runner.predict(split_batches(), True).astype(np.float64)
    for _ in range(samples - 1):
        mean += runner.predict(split_batches(), True)
    out.update({mode_key(k, MC): v for k, v in compute(kind, mean / samples, labels).items()})
    if keep is not None:
        keep[MC] = mean / samples
    return out


def predictions_text(probs: dict[str, np.ndarray], labels: np.ndarray) -> str:
    """One line per test example: its label and the probability of that label under standard
    and MC evaluation (4 decimals: well below any accuracy or log-loss digit a report shows)."""
    rows = np.arange(len(labels))
    std, mc = (np.asarray(probs[m])[rows, labels] for m in (STD, MC))
    return "label\tp_std\tp_mc\n" + "".join(
        f"{y}\t{a:.4f}\t{b:.4f}\n" for y, a, b in zip(labels, std, mc, strict=True))


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
    plan = prep.plan
    tracking_store.ensure_store(prep.uri)
    client = MlflowClient(prep.uri)
    task, framework = plan.data.name, plan.framework
    with tracking_store.store_errors(prep.uri):
        exp_id = tracking.experiment_id(client, plan.tracking.experiment, prep.uri)
    if not plan.tracking.force:
        done = tracking.find_completed(client, exp_id, prep.config_hash)
        if done is not None:
            print(f"skip: config {prep.config_hash} already completed as run {done.info.run_id}")
            return RunResult(done.info.run_id, "SKIPPED", {})

    backend = load_backend(framework)
    try:
        backend.configure_threads(plan.threads)
    except RuntimeError as e:  # a second run in one process: TensorFlow's pools are fixed
        warnings.warn(f"{e}; this run keeps the running thread pools", stacklevel=2)
    if not backend.device_available(plan.device):
        raise SpecError(f"train.device={plan.device}: {framework} sees no such device on "
                        "this machine; use train.device=cpu")
    runner = backend.Runner(prep.spec, plan.optim, plan.seed, plan.device, plan.compute)
    runner.load_weights(prep.weights)

    tk = plan.tracking
    run_id = tracking.open_training_run(
        client, exp_id, prep.uri, task=task, framework=framework, variant=plan.variant,
        seed=plan.seed, config_hash=plan.config_hash, select_on=plan.schedule.select_on,
        run_name=tk.run_name, preset=tk.preset, parent=tk.parent_run_id, sweep_id=tk.sweep_id,
        slurm=tk.slurm, tuned_from=tk.tuned_from)
    try:
        _terminate_on_sigterm()
        _log_params(client, run_id, plan)
        metrics = _train(client, run_id, prep, runner)
        tracking.log_params(client, run_id, {tracking.COMPUTE_PATH_PARAM: runner.compute_path()})
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


def _log_params(client, run_id: str, plan: P.RunPlan) -> None:
    tracking.log_config(client, run_id, plan.params, plan.threads, plan.yaml)


def _train(client, run_id: str, prep: Prepared, runner) -> dict[str, float]:
    """Train epoch by epoch, validate each epoch, keep the weights of the best validation
    score (`train.select_on`), stop after `train.patience` epochs without improvement, and
    evaluate the test split once with the kept weights. MC validation runs every
    `train.mc_every` epochs (it draws from the evaluation stream only, so skipping it changes
    no training step) and always at the selected epoch."""
    plan, data = prep.plan, prep.data
    t, tr = plan.data, plan.schedule
    name, higher = tr.select_on, tr.higher_is_better
    best: tuple[float, int, dict[str, np.ndarray], bool] | None = None
    stale = 0
    n_train = num_batches(data, "train", t.batch_size, t.bptt)
    for epoch in tqdm(range(1, tr.epochs + 1), desc="epochs", disable=None):
        lr = tr.lr_at(epoch)
        counter = _Counter(batches(data, "train", t.batch_size, t.bptt, (plan.seed, epoch)))
        bar = tqdm(counter, total=n_train, desc=f"epoch {epoch}", leave=False, disable=None)
        start, cpu = time.perf_counter(), time.process_time()
        try:
            loss = runner.train_epoch(bar, lr)
        except DivergenceError as e:
            raise DivergenceError(f"epoch {epoch}: {e}") from e
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        if not np.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss} in epoch {epoch}")
        start, cpu = time.perf_counter(), time.process_time()
        with_mc = tr.mc_every > 0 and epoch % tr.mc_every == 0
        valid = evaluate(runner, prep, "valid", mc=with_mc)
        values = {
            TRAIN_LOSS: loss, LR: lr, EPOCH_SECONDS: seconds,
            TRAIN_TOKENS_PER_S: counter.tokens / max(seconds, 1e-9),
            EVAL_SECONDS: time.perf_counter() - start, EPOCH_CPU_SECONDS: cpu_seconds,
            EVAL_CPU_SECONDS: time.process_time() - cpu,
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
    probs: dict[str, np.ndarray] = {}
    test = split_keys("test", evaluate(runner, prep, "test", keep=probs))
    if prep.spec.task_kind is not TaskKind.LANGUAGE_MODEL:
        tracking.log_text(client, run_id, tracking.TEST_PREDICTIONS,
                          predictions_text(probs, prep.data.splits["test"][1]))
    final = {BEST_EPOCH: float(best_epoch), EPOCHS_RUN: float(epoch), **test}
    _log(client, run_id, final, best_epoch)
    return final


def _log(client, run_id: str, values: dict[str, float], step: int) -> None:
    tracking.log_metrics(client, run_id, values, step)
