"""`make bench`: training and evaluation throughput of every variant in both frameworks.

Each framework is measured in its own worker process (the two fight over threads), with its
variants interleaved round by round so that machine noise hits them alike (the CPU-time ratio
is the steadier figure on a shared machine); ratios are taken
against the same framework's fused no-dropout baseline measured in the same process:
PyTorch `none` (cuDNN/oneDNN-fused nn.LSTM) and, for Keras, the stock `keras.layers.LSTM` without
dropout (`keras3_builtin` at rate 0; Keras has no fused CPU kernel). Keras also gets the stock
`recurrent_dropout` path as a second reference.

    python -m experiments.bench [--shapes ptb200 ptb650 cls128] [--rounds 3] [--batches 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import experiments.offline  # noqa: F401  (MLflow telemetry off before mlflow is imported)
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
BASELINE = {"torch": "none", "keras": "stock_no_dropout"}


@dataclass(frozen=True)
class Arm:
    """One measured row: a variant, at RATE on every knob it uses (rate 0 for `*_no_dropout`)."""

    name: str
    variant: Variant
    rate: float

    def spec(self, shape: str, vocab: int, outputs: int) -> ModelSpec:
        task, _, _, embed, hidden, layers = SHAPES[shape]
        used = rates_used_by(self.variant) - {"embedding"}
        if self.variant is Variant.torch_builtin and layers == 1:
            used -= {"input"}  # nn.LSTM's dropout acts between layers: on 1 layer it is `none`
        kind = TaskKind.LANGUAGE_MODEL if task == "ptb" else TaskKind.CLASSIFIER
        return ModelSpec(kind, vocab, outputs, embed, hidden, layers, self.variant,
                         **{f"{r}_dropout": self.rate for r in used})


def arms(framework: str, variants: list[str] | None) -> list[Arm]:
    chosen = [Variant(v) for v in variants] if variants else sorted(
        FRAMEWORK_VARIANTS[framework], key=list(Variant).index)
    out = [Arm(v.value, v, 0.0 if v is Variant.none else RATE) for v in chosen
           if v in FRAMEWORK_VARIANTS[framework] and v is not Variant.keras3_builtin]
    if framework == "keras":
        out += [Arm("stock_no_dropout", Variant.keras3_builtin, 0.0),
                Arm("stock_dropout", Variant.keras3_builtin, RATE)]
    elif not any(a.name == "none" for a in out):
        out.insert(0, Arm("none", Variant.none, 0.0))
    return out


def worker(args: argparse.Namespace) -> list[dict]:
    """Measure one framework (runs in a child process)."""
    import psutil

    from experiments.batching import batches
    from experiments.tasks import load_task
    from frameworks.base import initial_weights, load_backend

    backend = load_backend(args.worker)
    backend.configure_threads(args.threads)
    process, rows = psutil.Process(), []
    for shape in args.shapes:
        task, batch, steps, *_ = SHAPES[shape]
        data = load_task(task, vocab_size=None if task == "ptb" else 20000, maxlen=steps)
        sample = list(batches(data, "train", batch, steps))[: args.batches]
        tokens = sum(b.x.size for b in sample)
        runners, first_call = {}, {}
        for arm in arms(args.worker, args.variants):
            spec = arm.spec(shape, data.vocab_size, data.num_outputs)
            optim = OptimSpec("sgd", clip_norm=5.0)
            runner = backend.Runner(spec, optim, seed=0, device=args.device)
            runner.load_weights(initial_weights(spec, 0))
            start = time.perf_counter()
            runner.train_epoch(sample[:1], 0.1)  # traces / compiles
            runner.predict(sample[:1], stochastic=False)
            first_call[arm.name] = time.perf_counter() - start
            runners[arm.name] = runner
        timings = {name: {"train": [], "cpu": [], "eval": [], "rss": 0.0} for name in runners}
        names = list(runners)
        for round_ in range(args.rounds):
            for name in names[round_ % len(names):] + names[: round_ % len(names)]:
                start, cpu = time.perf_counter(), time.process_time()
                runners[name].train_epoch(sample, 0.1)
                middle = time.perf_counter()
                timings[name]["cpu"].append(tokens / (time.process_time() - cpu))
                runners[name].predict(sample, stochastic=False)
                end = time.perf_counter()
                timings[name]["train"].append(tokens / (middle - start))
                timings[name]["eval"].append(tokens / (end - middle))
                timings[name]["rss"] = max(timings[name]["rss"], process.memory_info().rss / 2**20)
        for name, t in timings.items():
            rows.append({
                "framework": args.worker, "shape": shape, "arm": name,
                "train_tokens_per_s": statistics.median(t["train"]),
                "train_spread": (max(t["train"]) - min(t["train"])) / statistics.median(t["train"]),
                "train_cpu_tokens_per_s": statistics.median(t["cpu"]),
                "eval_tokens_per_s": statistics.median(t["eval"]),
                "first_call_s": first_call[name], "peak_rss_mb": t["rss"],
                "threads": args.threads, "rounds": args.rounds, "batches": len(sample),
            })
        del runners
    return rows


def add_ratios(rows: list[dict]) -> None:
    """Ratio of each row to its framework's baseline (and Keras' stock dropout path)."""
    index = {(r["framework"], r["shape"], r["arm"]): r for r in rows}
    for r in rows:
        base = index.get((r["framework"], r["shape"], BASELINE[r["framework"]]))
        for key in ("train", "train_cpu", "eval"):
            value = r[f"{key}_tokens_per_s"]
            r[f"{key}_ratio"] = value / base[f"{key}_tokens_per_s"] if base else float("nan")
        stock = index.get((r["framework"], r["shape"], "stock_dropout"))
        r["train_vs_stock_dropout"] = (
            r["train_tokens_per_s"] / stock["train_tokens_per_s"] if stock else float("nan"))


def markdown(rows: list[dict]) -> str:
    head = ("| framework | shape | variant | train tok/s | ratio | CPU-time ratio | spread "
            "| eval tok/s | ratio | vs stock dropout | first call s | peak RSS MB |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['framework']} | {r['shape']} | {r['arm']} | {r['train_tokens_per_s']:,.0f} "
            f"| {r['train_ratio']:.2f} | {r['train_cpu_ratio']:.2f} | {r['train_spread']:.0%} "
            f"| {r['eval_tokens_per_s']:,.0f} "
            f"| {r['eval_ratio']:.2f} | {r['train_vs_stock_dropout']:.2f} "
            f"| {r['first_call_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def log_to_mlflow(rows: list[dict], uri: str) -> None:
    from mlflow.tracking import MlflowClient

    from experiments import tracking

    uri = tracking.resolve_uri(uri)
    tracking.ensure_store(uri)
    client = MlflowClient(uri)
    exp_id = tracking.experiment_id(client, "bench", uri)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for r in rows:
        tracking.log_bench_run(
            client, exp_id, bench_id=stamp, framework=r["framework"], variant=r["arm"],
            shape=r["shape"], threads=r["threads"],
            metrics={k: v for k, v in r.items() if isinstance(v, int | float)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "keras"])
    parser.add_argument("--shapes", nargs="+", default=["ptb200", "ptb650", "cls128"],
                        choices=sorted(SHAPES))
    parser.add_argument("--variants", nargs="+", default=None, help="default: all of a framework")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.worker_out.write_text(json.dumps(worker(args)))
        return 0
    rows: list[dict] = []
    for framework in args.frameworks:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.json"
            command = [sys.executable, "-m", "experiments.bench", *(argv or sys.argv[1:]),
                       "--worker", framework, "--worker-out", str(out)]
            print(f"[bench] {framework}: {', '.join(args.shapes)}", file=sys.stderr)
            subprocess.run(command, cwd=REPO, check=True)
            rows += json.loads(out.read_text())
    add_ratios(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    import csv

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
