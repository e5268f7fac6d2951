"""Training throughput of every PyTorch variant relative to the fused no-dropout model.

All variants are timed in one process, interleaved round by round (the machine may be shared),
and each variant's best round is kept. The default clock is this process's CPU time with one
thread, which a shared machine disturbs far less than wall time; `--clock wall` for wall time.
Run: `python -m frameworks.torch_backend.bench --help`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from frameworks.spec import Batch, ModelSpec, OptimSpec, TaskKind, Variant, rates_used_by
from frameworks.torch_backend import Runner, configure_threads

SHAPES = {
    # name: (task, batch, steps, vocab, embed, hidden, layers, outputs)
    "ptb200": (TaskKind.LANGUAGE_MODEL, 20, 35, 10000, 200, 200, 2, 10000),
    "ptb650": (TaskKind.LANGUAGE_MODEL, 20, 35, 10000, 650, 650, 2, 10000),
    "cls128": (TaskKind.CLASSIFIER, 64, 50, 10000, 128, 128, 1, 2),
}
RATE = 0.3


def spec_for(shape: str, variant: Variant) -> ModelSpec:
    task, _, _, vocab, embed, hidden, layers, outputs = SHAPES[shape]
    rates = {f"{r}_dropout": RATE for r in rates_used_by(variant)}
    return ModelSpec(task, vocab, outputs, embed, hidden, layers, variant, **rates)


def make_batches(shape: str, n: int, seed: int = 0) -> list[Batch]:
    task, b, t, vocab, *_, outputs = SHAPES[shape]
    rng = np.random.default_rng(seed)
    ys = (b, t) if task is TaskKind.LANGUAGE_MODEL else (b,)
    return [Batch(rng.integers(0, vocab, (b, t)), rng.integers(0, outputs, ys)) for _ in range(n)]


def measure(
    shape: str, variants: list[Variant], batches: int, rounds: int, clock: str = "cpu"
) -> dict[str, float]:
    """Best tokens/s of each variant (training: forward, backward, SGD step)."""
    data = make_batches(shape, batches)
    tokens = sum(x.size for x, _ in data)
    runners = {
        v: Runner(spec_for(shape, v), OptimSpec("sgd", clip_norm=0.25), seed=0) for v in variants
    }
    for runner in runners.values():  # warm-up (allocator, first-call overheads)
        runner.train_epoch(data[:1], lr=0.01)
    best = dict.fromkeys(variants, 0.0)
    now = time.process_time if clock == "cpu" else time.perf_counter
    for _ in range(rounds):
        for v, runner in runners.items():
            start = now()
            runner.train_epoch(data, lr=0.01)
            best[v] = max(best[v], tokens / (now() - start))
    return {v.value: tps for v, tps in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--variants", nargs="+", default=None, help="default: all torch variants")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    args = parser.parse_args()
    configure_threads(args.threads)
    names = args.variants or [v.value for v in Variant if v is not Variant.KERAS3_BUILTIN]
    variants = [Variant(n) for n in names]
    if Variant.NONE not in variants:
        variants.insert(0, Variant.NONE)
    for shape in args.shapes:
        result = measure(shape, variants, args.batches, args.rounds, args.clock)
        base = result[Variant.NONE.value]
        print(f"{shape}: none = {base:,.0f} tokens/s (fused nn.LSTM, no dropout)", flush=True)
        for name, tps in result.items():
            print(f"  {name:26s} {tps:10,.0f} tokens/s  {tps / base:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
