"""Expectations for the report on the part3-like store, computed independently of the
report's code: straight from MLflow (MlflowClient searches), the sweep files, the published
numbers' data file (conf/published.yaml, read with PyYAML) and scipy (paired t-tests, Holm by
hand, the minimum detectable difference by scipy.stats.nct)."""

from __future__ import annotations

import math

import numpy as np
import yaml
from scipy import optimize
from scipy import stats as sps

from tests.conftest import CONF
from tests.support import part3_store

METRIC = "test_accuracy_std"
DATA = CONF / "published.yaml"


def search(p3, where: str) -> dict[int, object]:
    """{seed: run} of the runs matching a filter, straight from MLflow."""
    runs = p3["client"].search_runs([p3["exp"]], where, max_results=1000)
    return {int(r.data.tags["seed"]): r for r in runs}


def side(p3, side: str) -> dict[int, object]:
    """A declared side as the sweeps mean it: a preset's runs, or framework/variant among the
    runs of the grid sweep (the only sweep that names sides that way here)."""
    if "/" in side:
        framework, variant = side.split("/")
        return search(p3, f"tags.sweep_id = 'grid-1' and tags.framework = '{framework}' and "
                           f"tags.variant = '{variant}'")
    return search(p3, f"tags.preset = '{side}'")


def label_runs(p3, label: str) -> dict[int, object]:
    """The runs behind an arm label: `variant [preset]`, or a bare variant of the grid sweep."""
    if "[" in label:
        return search(p3, f"tags.preset = '{label.split('[', 1)[1].rstrip(']')}'")
    return search(p3, f"tags.sweep_id = 'grid-1' and tags.variant = '{label}'")


def holm(p: list[float]) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adj
    return out


def declared() -> list[str]:
    return part3_store.part3_primary() + part3_store.GRID_PRIMARY.splitlines()


def expected_primary(p3) -> dict[str, dict]:
    """Per declared comparison: paired test on the store's values, Holm over the declared
    family with an untestable comparison counted as p = 1."""
    out = {}
    for text in declared():
        a, b = (side(p3, s) for s in text.split(" vs "))
        seeds = sorted(set(a) & set(b))
        x = np.array([a[s].data.metrics[METRIC] for s in seeds])
        y = np.array([b[s].data.metrics[METRIC] for s in seeds])
        p = sps.ttest_rel(x, y).pvalue if len(seeds) > 1 else math.nan
        out[text] = {"a": a, "b": b, "n": len(seeds), "d": x - y, "p": p}
    adjusted = holm([1.0 if math.isnan(v["p"]) else v["p"] for v in out.values()])
    for v, h in zip(out.values(), adjusted, strict=True):
        v["p_holm"] = math.nan if math.isnan(v["p"]) else h
    return out


def published(preset: str) -> dict:
    """A preset's entry in conf/published.yaml, read here with PyYAML alone: source, setting,
    caveat and `numbers` {"<metric>_<mode>" or "<metric>" when the mode is unstated: value}."""
    entry = yaml.safe_load(DATA.read_text())[preset]
    numbers = {(metric if mode == "unstated" else f"{metric}_{mode}"): float(value)
               for metric, by_mode in entry["test"].items() for mode, value in by_mode.items()}
    return {**entry, "caveat": " ".join(entry["caveat"].split()), "numbers": numbers}


def published_accuracy(preset: str) -> float:
    """Part 3's headline accuracy of a preset: standard, else the one whose mode it did not
    state, else MC."""
    numbers = published(preset)["numbers"]
    for key in ("accuracy_std", "accuracy", "accuracy_mc"):
        if key in numbers:
            return numbers[key]
    return math.nan


def mde(sd: float, n: int, alpha: float = 0.05) -> float:
    """80% power, two-sided paired t-test at `alpha`: solved here with scipy.stats.nct."""
    crit = sps.t.ppf(1 - alpha / 2, n - 1)

    def power(d: float) -> float:
        nc = d * math.sqrt(n)
        lower = sps.nct.cdf(-crit, n - 1, nc)  # NaN once it underflows: it is 0 there
        return sps.nct.sf(crit, n - 1, nc) + (0.0 if math.isnan(lower) else lower)

    return optimize.brentq(lambda d: power(d) - 0.8, 1e-6, 50.0) * sd
