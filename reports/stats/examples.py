"""Seeds and test examples together: the per-example paired differences of two arms from their
logged test predictions, and an interval that covers both the training noise (seeds) and the
sampling of the test set (examples).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from experiments.metrics import EPS
from reports.stats.intervals import CONFIDENCE, MeanCI


def example_differences(a: np.ndarray, b: np.ndarray, metric: str, mode: str) -> np.ndarray:
    """Per test example, A's contribution to `metric` minus B's, from the logged predictions
    (label, p_std, p_mc): correct or not for accuracy, -log p(true label) for log-loss."""
    column = 1 if mode == "std" else 2
    if metric == "accuracy":
        return (a[:, column] > 0.5).astype(float) - (b[:, column] > 0.5).astype(float)
    return np.log(np.clip(b[:, column], EPS, 1)) - np.log(np.clip(a[:, column], EPS, 1))


def seeds_and_examples(d: np.ndarray, confidence: float = CONFIDENCE) -> MeanCI:
    """Mean of per-example paired differences d[seed, example] (every seed on the same test
    examples) with an interval that covers both sources of variance: training (seeds) and the
    test set's sampling (examples). The variance decomposition d = mu + a_seed + b_example + e:
    the seeds-only interval sees a and e through the per-seed means, never b, which every seed
    shares; the examples' spread of their seed-averaged difference adds Var(b)/N (and e/(S N),
    counted twice: a conservative sliver). t with Welch-Satterthwaite degrees of freedom;
    `sd` is the SD of the per-seed means, as for the seeds-only interval."""
    d = np.asarray(d, dtype=np.float64)
    seeds, examples = d.shape
    per_seed, per_example = d.mean(axis=1), d.mean(axis=0)
    if seeds < 2 or examples < 2:
        return MeanCI(seeds, float(d.mean()) if d.size else math.nan, math.nan, math.nan,
                      math.nan)
    v_seed = float(per_seed.var(ddof=1)) / seeds
    v_example = float(per_example.var(ddof=1)) / examples
    total = v_seed + v_example
    df = total ** 2 / (v_seed ** 2 / (seeds - 1) + v_example ** 2 / (examples - 1)) \
        if total > 0 else math.inf
    half = float(special.stdtrit(df, (1 + confidence) / 2)) * math.sqrt(total) \
        if total > 0 else 0.0
    mean = float(d.mean())
    return MeanCI(seeds, mean, mean - half, mean + half, float(per_seed.std(ddof=1)))
