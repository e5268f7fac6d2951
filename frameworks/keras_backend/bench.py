"""Throughput of the LSTM layers against the stock Keras LSTM, side by side in one process.

    python -m frameworks.keras_backend.bench [--threads 2] [--repeats 20] [--level runner]

`--level layer` (default) measures a training step of one layer (forward + gradients for the
weights) on a random (B, T, D) input, compiled with `tf.function`; `--level runner` measures
`Runner.train_epoch` on one batch of the whole model (embedding, 2 layers, 10k softmax, masks
drawn, SGD update). Candidates are interleaved round-robin so machine noise hits all alike.
Ratios are stock-time / candidate-time (> 1 = faster than the stock layer). The stock references are
`keras.layers.LSTM` without dropout (the CPU ceiling: Keras has no fused CPU kernel) and with
dropout + recurrent_dropout (which Keras >= 3.8 runs as implementation 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from frameworks.keras_backend.threads import configure_threads  # noqa: E402

SHAPES = {  # name: (batch, steps, input size, hidden)
    "ptb_h200": (20, 35, 200, 200),
    "ptb_h650": (20, 35, 650, 650),
    "classifier_h128": (64, 50, 128, 128),
}
RATE = 0.25
STAT = "median"


def _layers(batch: int, d: int, hid: int):
    """name -> (callable(x, h, c) -> outputs, trainable variables)."""
    import keras
    import tensorflow as tf

    from frameworks.keras_backend.layers import VariantLSTM
    from frameworks.keras_backend.masks import _weight_shape
    from frameworks.keras_backend.sampler import MaskSampler
    from frameworks.spec import Variant

    sampler = MaskSampler(0)
    out = {}
    for name, kwargs in (("stock_none", {}),
                         ("stock_recdrop", {"dropout": RATE, "recurrent_dropout": RATE})):
        layer = keras.layers.LSTM(hid, return_sequences=True, seed=1, **kwargs)
        layer.build((None, None, d))

        def call(x, h, c, layer=layer):
            return layer(tf.transpose(x, (1, 0, 2)), initial_state=[h, c], training=True)

        out[name] = (call, layer.trainable_weights)
    gal = {
        Variant.KERAS_IMPL0: ((4, batch, d), (4, batch, hid)),
        Variant.KERAS_IMPL1: ((4, batch, d), (4, batch, hid)),
        Variant.KERAS_IMPL2: ((batch, d), (batch, hid)),
    }
    for variant in [Variant.NONE, *gal, *sorted(
            {Variant.WEIGHTDROP, Variant.WEIGHTDROP_VARIATIONAL, Variant.WEIGHTDROP_COLUMN,
             Variant.WEIGHTDROP_COLUMN_UNTIED}, key=lambda v: v.value)]:
        layer = VariantLSTM(d, hid, variant)
        for v in layer.weight_vars():
            v.assign(tf.random.uniform(v.shape, -0.1, 0.1))
        kw = {}
        if variant in gal:
            kw = {"in_mask": gal[variant][0], "rec_mask": gal[variant][1]}
        elif variant is not Variant.NONE:
            kw = {"weight_mask": _weight_shape(variant, hid)}

        def call(x, h, c, layer=layer, kw=kw):
            masks = {k: sampler.draw(k, s, RATE) for k, s in kw.items()}  # trace-time constants
            return layer.forward(x, h, c, **masks)[0]

        out[variant.value] = (call, layer.trainable_weights)
    return out


def bench(shape: str, repeats: int) -> dict[str, float]:
    import tensorflow as tf

    batch, steps, d, hid = SHAPES[shape]
    x = tf.random.uniform((steps, batch, d))
    h = tf.zeros((batch, hid))
    def make_step(call, variables):  # a closure: variables passed as arguments lose the tape
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(call(x, h, h))
            return tape.gradient(loss, variables)

        return tf.function(step, autograph=False)

    fns = {name: make_step(*layer) for name, layer in _layers(batch, d, hid).items()}
    for fn in fns.values():
        fn()  # trace
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for g in fn():  # fetch the values: the timing must include the work
                g.numpy()
            times[name].append(time.perf_counter() - t0)
    stat = min if STAT == "min" else statistics.median
    return {name: stat(ts) for name, ts in times.items()}


RUNNER_SHAPES = {  # name: (task, batch, steps, vocab, hidden, layers)
    "ptb_h200": ("lm", 20, 35, 10_000, 200, 2),
    "ptb_h650": ("lm", 20, 35, 10_000, 650, 2),
    "classifier_h128": ("classifier", 64, 50, 10_000, 128, 1),
}


def bench_runners(shape: str, repeats: int) -> dict[str, float]:
    """Median (or min) seconds of `Runner.train_epoch` on one batch, per variant. The stock
    rows are `keras3_builtin` without dropout and with input + recurrent dropout."""
    import numpy as np

    from frameworks.keras_backend.runner import Runner
    from frameworks.spec import Batch, ModelSpec, OptimSpec, Variant, rates_used_by

    task, batch, steps, vocab, hid, layers = RUNNER_SHAPES[shape]
    rng = np.random.default_rng(0)
    y = rng.integers(0, vocab, (batch, steps)) if task == "lm" else rng.integers(0, 2, (batch,))
    data = [Batch(rng.integers(0, vocab, (batch, steps)), y)]
    rows = {"stock_none": (Variant.KERAS3_BUILTIN, {}),
            "stock_recdrop": (Variant.KERAS3_BUILTIN, {"input_dropout": RATE,
                                                       "recurrent_dropout": RATE})}
    for v in Variant:
        if v not in (Variant.TORCH_BUILTIN, Variant.KERAS3_BUILTIN):
            rows[v.value] = (v, {f"{n}_dropout": RATE for n in rates_used_by(v)})
    runners = {}
    for name, (variant, rates) in rows.items():
        spec = ModelSpec(task_kind=task, vocab_size=vocab, num_outputs=vocab if task == "lm"
                         else 2, embed_size=hid, hidden_size=hid, num_layers=layers,
                         variant=variant, **rates)
        runners[name] = Runner(spec, OptimSpec("sgd", clip_norm=0.25), seed=0)
        runners[name].train_epoch(data, lr=0.1)  # trace
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            t0 = time.perf_counter()
            runner.train_epoch(data, lr=0.1)
            times[name].append(time.perf_counter() - t0)
    stat = min if STAT == "min" else statistics.median
    return {name: stat(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES))
    parser.add_argument("--no-unroll", action="store_true")
    parser.add_argument("--level", choices=["layer", "runner"], default="layer",
                        help="one LSTM layer, or the whole model's train_epoch on one batch")
    parser.add_argument("--stat", choices=["median", "min"], default="median",
                        help="min is steadier on a machine shared with other jobs")
    args = parser.parse_args()
    global STAT
    STAT = args.stat
    configure_threads(args.threads)
    if args.no_unroll:
        from frameworks.keras_backend import recurrence

        recurrence.UNROLL = False
    for shape in args.shapes:
        res = bench_runners(shape, args.repeats) if args.level == "runner" else bench(
            shape, args.repeats)
        ceiling, recdrop = res["stock_none"], res["stock_recdrop"]
        dims = RUNNER_SHAPES[shape] if args.level == "runner" else SHAPES[shape]
        print(f"\n{args.level} {shape} {dims}, {STAT} ms per train step")
        print(f"{'layer':28s} {'ms':>8s} {'vs stock none':>14s} {'vs stock recdrop':>17s}")
        for name, t in res.items():
            print(f"{name:28s} {t * 1e3:8.2f} {ceiling / t:14.2f} {recdrop / t:17.2f}")


if __name__ == "__main__":
    main()
