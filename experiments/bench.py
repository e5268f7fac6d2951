"""`make bench`: training and evaluation throughput of every variant in both frameworks.

Each framework is measured in its own worker process (the two fight over threads), against the
same framework's fused no-dropout baseline: PyTorch `none` (the oneDNN-fused nn.LSTM) and, for
Keras, the stock `keras.layers.LSTM` without dropout (`keras3_builtin` at rate 0; Keras has no
fused CPU kernel). Keras also gets the stock `recurrent_dropout` path as a second reference.

Ratios are paired per round: each round measures its arms in an order that rotates from round
to round, with the baseline before every 6 of them (bench_stats.schedule; the round's baseline
is the geometric mean of those), and the ratio of round i is arm_i / baseline_i (train
wall-clock tokens/s, train CPU-time tokens/s, eval tokens/s), so that machine load hitting a
round hits both sides of its ratio. A ratio is the geometric mean over rounds; its spread is the
half-width hw of the 95% Student-t interval of the mean of log(ratio_i), printed as exp(hw) - 1
(experiments/bench_stats.py). It is the uncertainty of the ratio itself and shrinks with rounds.

Rounds: by default 3 of every arm, then more of the baseline and the arms whose train ratio's
spread (wall or CPU time) is not yet below 10% (a precise arm leaves the rounds), within
--budget-min for the whole run, split over frameworks x shapes in proportion to their expected
cost; a shape whose share runs out stops and its imprecise rows are flagged `!`.
`--rounds N` runs exactly N rounds; `--quick` is the short run of the committed table (2 rounds,
4 batches). The arms whose code a framework's loop switch picks (`has_loops`: the per-step loop
variants -- the Gal family, semeniuta, zoneout -- in both frameworks) are measured under each of
--torch-loops / --keras-loops, one row each (`zoneout [eager]`, `keras_impl0 [bptt]`: the
path a machine without a compiler takes; the default loop, auto, keeps the plain name); the
`path` column says what computed it (compute_path).

    python -m experiments.bench [--shapes ptb200 ptb650 cls128] [--budget-min 15] [--rounds N]
        [--quick] [--batches N] [--torch-loops auto eager] [--keras-loops auto bptt] [--threads N]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import experiments.offline  # noqa: F401  (MLflow telemetry off before mlflow is imported)
from experiments import tracking_store
from experiments.bench_stats import (
    TARGET,
    Rounds,
    StopRule,
    markdown,
    pool,
    run_rounds,
    schedule,
    share_now,
)
from frameworks import rules
from frameworks import variants as registry
from frameworks.compute import Compute
from frameworks.spec import (
    FRAMEWORK_VARIANTS,
    ModelSpec,
    OptimSpec,
    TaskKind,
    Variant,
    rates_used_by,
)

REPO = Path(__file__).resolve().parent.parent
RATE = 0.25
# name: (task, batch, steps, embed, hidden, layers)
SHAPES = {
    "ptb200": ("ptb", 20, 35, 200, 200, 2),
    "ptb650": ("ptb", 20, 35, 650, 650, 2),
    "cls128": ("rt", 64, 50, 128, 128, 1),
    "tiny": ("rt", 16, 10, 8, 8, 1),
}
# Batches per arm and round: ~1-3 s of training each on a 2-core machine, so that 3 rounds of
# the default run fit in 15 minutes; more short rounds beat fewer long ones (t(n-1)/sqrt(n)).
BATCHES = {"ptb200": 4, "ptb650": 2, "cls128": 8, "tiny": 2}
# Rough seconds per arm and batch (train + eval) on that machine (the committed table): only
# the proportions matter, to split the budget so each shape gets about as many rounds.
COST = {"ptb200": 0.35, "ptb650": 1.6, "cls128": 0.1, "tiny": 0.01}
BASELINE = {"torch": "none", "keras": "stock_no_dropout"}
LOOPS = rules.LOOPS
DEFAULT_LOOP = rules.AUTO
KEYS = {"train": "train", "cpu": "train_cpu", "eval": "eval"}  # measured -> field prefix
TAIL_S = 30.0  # of the budget, kept for the table, CSV and MLflow after the workers


@dataclass(frozen=True)
class Arm:
    """One measured row: a variant at RATE on every knob it uses (rate 0 for `*_no_dropout`),
    and for PyTorch the torch_loop it runs under."""

    name: str
    variant: Variant
    rate: float
    loop: str | None = None

    def spec(self, shape: str, vocab: int, outputs: int) -> ModelSpec:
        task, _, _, embed, hidden, layers = SHAPES[shape]
        # every rate with an effect at this shape (nn.LSTM's dropout acts between layers only:
        # torch_builtin on one layer is `none`), the embedding's aside
        used = {r for r in rates_used_by(self.variant) - {"embedding"}
                if rules.applies(r, self.variant.value, num_layers=layers)}
        kind = TaskKind.LANGUAGE_MODEL if task == "ptb" else TaskKind.CLASSIFIER
        return ModelSpec(kind, vocab, outputs, embed, hidden, layers, self.variant,
                         rates={r: self.rate for r in used})


def has_loops(variant: Variant) -> bool:
    """Whether the variant's numbers come from a per-step loop the `*_loop` switch picks (the
    Gal family, semeniuta, zoneout, in both frameworks: each compiled path covers them all); the
    others run the fused layer, or one loop under every setting, and are measured once."""
    return registry.entry(variant).runs_as == "step_loop"


def arms(framework: str, variants: list[str] | None,
         loops: tuple[str, ...] = (DEFAULT_LOOP,)) -> list[Arm]:
    """The rows of one framework: a variant `has_loops` gets one arm per loop, named
    `variant [loop]` (the default loop keeps the plain name)."""
    chosen = [Variant(v) for v in variants] if variants else sorted(
        FRAMEWORK_VARIANTS[framework], key=list(Variant).index)
    out: list[Arm] = []
    for v in chosen:
        if v not in FRAMEWORK_VARIANTS[framework] or v is Variant.keras3_builtin:
            continue
        rate = 0.0 if v is Variant.none else RATE
        if has_loops(v):
            out += [Arm(v.value if loop == DEFAULT_LOOP else f"{v.value} [{loop}]", v, rate, loop)
                    for loop in loops]
        else:
            out.append(Arm(v.value, v, rate, DEFAULT_LOOP))
    if framework == "keras":
        out += [Arm("stock_no_dropout", Variant.keras3_builtin, 0.0, DEFAULT_LOOP),
                Arm("stock_dropout", Variant.keras3_builtin, RATE, DEFAULT_LOOP)]
    elif not any(a.name == "none" for a in out):
        out.insert(0, Arm("none", Variant.none, 0.0, DEFAULT_LOOP))
    return out


def batches_for(args: argparse.Namespace, shape: str) -> int:
    return args.batches or BATCHES[shape]


def weight(args: argparse.Namespace, framework: str, shape: str) -> float:
    """Expected seconds per round of one framework at one shape: its share of the budget."""
    return len(arms(framework, args.variants, loops_of(args, framework))) \
        * batches_for(args, shape) * COST[shape]


def loops_of(args: argparse.Namespace, framework: str) -> tuple[str, ...]:
    return tuple(args.torch_loops if framework == "torch" else args.keras_loops)


def stop_rule(args: argparse.Namespace, budget_s: float) -> StopRule:
    return StopRule(min_rounds=3, threshold=TARGET, budget_s=budget_s, fixed=args.rounds)


def worker(args: argparse.Namespace) -> list[dict]:
    """Measure one framework (runs in a child process), each shape within its share of the
    time left until args.deadline."""
    from frameworks.base import load_backend

    backend = load_backend(args.worker)
    backend.configure_threads(args.threads)
    rows: list[dict] = []
    for i, shape in enumerate(args.shapes):
        weights = [weight(args, args.worker, s) for s in args.shapes[i:]]
        share_end = time.time() + share_now(args.deadline - time.time(), weights)
        rows += measure_shape(backend, args, shape, share_end)
    return rows


def measure_shape(backend, args: argparse.Namespace, shape: str, share_end: float) -> list[dict]:
    """The rows of one shape: every arm built and called once (tracing, compiling and the cpp
    build stay out of the rounds), then rounds until the stop rule says stop, each measuring
    the arms it is given in the order of `schedule` (the baseline several times)."""
    import psutil

    from experiments.batching import batches
    from experiments.tasks import load_task
    from frameworks.base import initial_weights

    started = time.time()
    task, batch, steps, *_ = SHAPES[shape]
    data = load_task(task, vocab_size=None if task == "ptb" else 20000, maxlen=steps)
    sample = list(batches(data, "train", batch, steps))[: batches_for(args, shape)]
    tokens = sum(b.x.size for b in sample)
    shape_arms = {a.name: a for a in arms(args.worker, args.variants, loops_of(args, args.worker))}
    runners, first_call = {}, {}
    for arm in shape_arms.values():
        spec = arm.spec(shape, data.vocab_size, data.num_outputs)
        runner = backend.Runner(spec, OptimSpec("sgd", clip_norm=5.0), seed=0, device=args.device,
                                compute=Compute(arm.loop or DEFAULT_LOOP))
        runner.load_weights(initial_weights(spec, 0))
        start = time.perf_counter()
        runner.train_epoch(sample[:1], 0.1)  # traces / compiles / builds the cpp loop
        runner.predict(sample[:1], stochastic=False)
        first_call[arm.name] = time.perf_counter() - start
        runners[arm.name] = runner
    names, process = list(runners), psutil.Process()
    paths: dict[str, list[str]] = {name: [] for name in names}
    rss = dict.fromkeys(names, 0.0)

    def measure(round_: int, chosen: Sequence[str] | None) -> dict[str, dict[str, float]]:
        out: dict[str, list[dict[str, float]]] = {}
        now = [n for n in names if chosen is None or n in chosen]
        for name in schedule(now, BASELINE[args.worker], round_):
            start, cpu = time.perf_counter(), time.process_time()
            runners[name].train_epoch(sample, 0.1)
            middle, cpu = time.perf_counter(), time.process_time() - cpu
            runners[name].predict(sample, stochastic=False)
            end = time.perf_counter()
            path = runners[name].compute_path()  # training and evaluation so far
            paths[name] += [] if path in paths[name] else [path]
            out.setdefault(name, []).append(  # never a zero division
                {"train": tokens / max(middle - start, 1e-9), "cpu": tokens / max(cpu, 1e-9),
                 "eval": tokens / max(end - middle, 1e-9)})
            rss[name] = max(rss[name], process.memory_info().rss / 2**20)
        return {name: pool(m) for name, m in out.items()}

    def report(rounds: Rounds) -> None:
        worst = rounds.worst_spread(("train", "cpu"))
        print(f"[bench] {args.worker} {shape} round {rounds.count}: worst train spread "
              + ("n/a" if math.isnan(worst) else f"{worst:.0%}"), file=sys.stderr)

    rounds = run_rounds(measure, BASELINE[args.worker],
                        stop_rule(args, share_end - time.time()), report=report)
    print(f"[bench] {args.worker} {shape}: {rounds.count} rounds ({rounds.reason}) in "
          f"{time.time() - started:.0f} s of a {share_end - started:.0f} s share", file=sys.stderr)
    runners.clear()  # free the models before the next shape
    rows = []
    for name, arm in shape_arms.items():
        count = len(rounds.values(name, "train"))  # fewer than the shape's: precise, it left
        row = {"framework": args.worker, "shape": shape, "arm": name, "loop": arm.loop or "",
               "path": "fused" if paths[name] == ["none"] else "+".join(paths[name]),
               "rounds": count, "stop": rounds.reason if count == rounds.count else "converged"}
        for key, prefix in KEYS.items():
            summary = rounds.summary(name, key)
            row[f"{prefix}_tokens_per_s"] = statistics.median(rounds.values(name, key))
            row[f"{prefix}_ratio"], row[f"{prefix}_ratio_spread"] = summary.ratio, summary.spread
        stock = "stock_dropout" if "stock_dropout" in shape_arms else None
        row["train_vs_stock_dropout"] = (
            rounds.summary(name, "train", stock).ratio if stock else math.nan)
        rows.append(row | {"first_call_s": first_call[name], "peak_rss_mb": rss[name],
                           "threads": args.threads, "batches": len(sample)})
    return rows


def log_to_mlflow(rows: list[dict], uri: str | None) -> None:
    from mlflow.tracking import MlflowClient

    from experiments import tracking

    uri = tracking_store.resolve_uri(uri)
    tracking_store.ensure_store(uri)
    client = MlflowClient(uri)
    exp_id = tracking.experiment_id(client, "bench", uri)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for r in rows:
        tracking.log_bench_run(
            client, exp_id, bench_id=stamp, framework=r["framework"], variant=r["arm"],
            shape=r["shape"], threads=r["threads"],
            metrics={k: v for k, v in r.items()
                     if isinstance(v, int | float) and not isinstance(v, bool)})


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "keras"])
    parser.add_argument("--shapes", nargs="+", default=["ptb200", "ptb650", "cls128"],
                        choices=sorted(SHAPES))
    parser.add_argument("--variants", nargs="+", default=None, help="default: all of a framework")
    parser.add_argument("--budget-min", type=float, default=15.0,
                        help="wall-clock minutes for the whole run (default 15); each framework "
                             "x shape gets a share in proportion to its expected cost and stops "
                             "adding rounds when it is spent (at least 3 rounds each)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="exactly N rounds per shape (default: adaptive, until every train "
                             f"ratio's spread is below {TARGET * 100:.0f}%% or the share is spent)")
    parser.add_argument("--quick", action="store_true",
                        help="the committed table's short run: 2 rounds of 4 batches")
    parser.add_argument("--batches", type=int, default=None,
                        help="batches per arm and round (default by shape: "
                             + ", ".join(f"{k} {v}" for k, v in BATCHES.items()) + ")")
    parser.add_argument("--torch-loops", nargs="+", default=["auto", "eager"],
                        choices=LOOPS["torch"],
                        help="framework.torch_loop values to measure every PyTorch per-step "
                             "loop variant under, one row each (default: auto eager, the "
                             "default path and the one a machine without a compiler takes)")
    parser.add_argument("--keras-loops", nargs="+", default=["auto", "bptt"],
                        choices=LOOPS["keras"],
                        help="framework.keras_loop values to measure every Keras per-step "
                             "loop variant under, one row each (default: auto bptt, "
                             "as for PyTorch)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=math.inf, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds = 2 if args.rounds is None else args.rounds
        args.batches = args.batches or 4
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    if args.worker:
        args.worker_out.write_text(json.dumps(worker(args)))
        return 0
    deadline = time.time() + max(args.budget_min * 60 - TAIL_S, 0.0)
    rows: list[dict] = []
    for i, framework in enumerate(args.frameworks):
        weights = [sum(weight(args, f, s) for s in args.shapes) for f in args.frameworks[i:]]
        share_end = time.time() + share_now(deadline - time.time(), weights)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.json"
            command = [sys.executable, "-m", "experiments.bench", *argv, "--worker", framework,
                       "--worker-out", str(out), "--deadline", repr(share_end)]
            print(f"[bench] {framework}: {', '.join(args.shapes)}", file=sys.stderr)
            subprocess.run(command, cwd=REPO, check=True)
            rows += json.loads(out.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "bench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = markdown(rows)
    (args.out / "bench.md").write_text(table)
    print(table)
    if not args.no_mlflow:
        log_to_mlflow(rows, args.tracking_uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
