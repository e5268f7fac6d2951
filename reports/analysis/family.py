"""The primary family's answers beyond the paired t-test: equivalence within the margin the
sweep declared, the interval over seeds and test examples, and what an undecided answer would
cost (seeds and CPU-hours). `reports.analysis.compare` builds the rows; this module fills these
columns of its primary rows and words the cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports import fmt
from reports.stats import (
    MAX_SEEDS,
    equivalence_p,
    example_differences,
    family_alpha,
    holm,
    mean_ci,
    minimum_detectable,
    seeds_and_examples,
    seeds_for_equivalence,
    seeds_to_detect,
)


def paired_seeds(r) -> list[int]:
    """The seeds a comparison row paired (its `seeds` column, "0,1,2")."""
    return [int(x) for x in str(r["seeds"]).split(",") if x != ""]


def with_test_sampling(frame: pd.DataFrame, first: pd.Index, predictions: dict, metric: str,
                        mode: str) -> None:
    """The interval of each primary difference over seeds and test examples together, where
    both arms logged their test predictions for every paired seed (`seeds_and_examples`)."""
    for i in first:
        r = frame.loc[i]
        seeds = paired_seeds(r)
        a, b = predictions.get(r["a_arm"], {}), predictions.get(r["b_arm"], {})
        if len(seeds) < 2 or metric not in ("accuracy", "log_loss") or \
                any(s not in a or s not in b or len(a[s]) != len(b[s]) for s in seeds):
            continue
        both = seeds_and_examples(np.stack([example_differences(a[s], b[s], metric, mode)
                                            for s in seeds]))
        frame.loc[i, ["low_both", "high_both"]] = both.low, both.high


def margin_for(margins: dict, metric: str, mean_b: float) -> float:
    """The declared equivalence margin of `metric` in its own units: an absolute one as it is,
    a relative one ("2%") times |mean of B|; NaN when the sweep declared none."""
    raw = margins.get(metric)
    if raw is None:
        return np.nan
    if isinstance(raw, str) and raw.endswith("%"):
        return float(raw[:-1]) / 100 * abs(mean_b)
    return float(raw)


def equivalence_and_cost(frame: pd.DataFrame, first: pd.Index, values: dict,
                          hours: dict) -> None:
    """For the primary family: the family's level alpha / m, the MDE and the difference's
    interval at that level, the paired TOST within the margin (Holm over the family, an
    untestable member as p = 1), and, per member, the seeds and CPU-hours an answer needs."""
    m = len(first)
    level = family_alpha(m)
    frame.loc[first, "alpha_family"] = level
    p_eq = []
    for i in first:
        r = frame.loc[i]
        seeds = paired_seeds(r)
        d = [values[r["a_arm"]][s] - values[r["b_arm"]][s] for s in seeds] if seeds else []
        p_eq.append(equivalence_p(d, r["margin"]) if len(d) >= 2 else np.nan)
        wide = mean_ci(d, 1 - level) if len(d) >= 2 else None
        frame.loc[i, ["family_low", "family_high"]] = \
            (wide.low, wide.high) if wide else (np.nan, np.nan)
        frame.loc[i, "mde_family"] = minimum_detectable(r["sd"], int(r["n"]), alpha=level)
        frame.loc[i, "seeds_detect"] = seeds_to_detect(r["diff"], r["sd"], level)
        frame.loc[i, "seeds_equiv"] = seeds_for_equivalence(r["diff"], r["sd"], r["margin"],
                                                            level)
        per_seed = hours.get(r["a_arm"], np.nan) + hours.get(r["b_arm"], np.nan)
        for what in ("detect", "equiv"):
            frame.loc[i, f"cpu_hours_{what}"] = frame.loc[i, f"seeds_{what}"] * per_seed
    frame.loc[first, "p_equiv"] = p_eq
    padded = [1.0 if not np.isfinite(x) else x for x in p_eq]
    frame.loc[first, "p_equiv_holm"] = holm(padded)
    frame.loc[frame.index.isin(first) & frame["p_equiv"].isna(), "p_equiv_holm"] = np.nan


def cost_of_answer(r) -> str:
    """What settling an undecided primary comparison would take, from the observed spread."""
    m = r.metric

    def seeds(n: float, hours: float) -> str:
        if not fmt.finite(n):
            return "not reachable" if n == np.inf else "unknown"
        cpu = f", about {hours:.0f} CPU-hours" if fmt.finite(hours) else ""
        return f"{int(n)} seeds{cpu}"

    detect = seeds(r.seeds_detect, r.cpu_hours_detect)
    equiv = (seeds(r.seeds_equiv, r.cpu_hours_equiv) if fmt.finite(r.margin)
             else "no margin declared")
    if r.seeds_equiv == np.inf and fmt.finite(r.margin):
        why = (f"|observed difference| ≥ margin {fmt.diff_size(m, r.margin)}"
               if abs(r.diff) >= r.margin else f"more than {MAX_SEEDS} seeds")
        equiv = f"not reachable ({why})"
    return (f"to detect the observed {fmt.with_unit(m, r.diff, True)} at α/m = "
            f"{r.alpha_family:.4g} with 80% power: {detect}; to show equivalence within the "
            f"margin: {equiv}")
