"""The forest plot's data (`reports.figures.forest` draws it): per arm our means in both
evaluation modes beside the published single run and the 95% prediction interval of one run of
ours it is judged by (section 3's rule: in the published number's mode, standard where it gave
none), and per testable primary question the paired difference with the interval that agrees
with its verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.metrics import MODES
from reports.analysis.part3 import preferred_key
from reports.stats import ALPHA


def forest_data(summary: pd.DataFrame, claims: pd.DataFrame, c: pd.DataFrame, metric: str,
                mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the forest plot draws: per arm ours (std, MC), the published number in the compared
    mode and the prediction interval of one run of ours it is judged by; per testable primary
    comparison the difference with its interval at the family's level, the equivalence margin
    and whether the difference survives Holm."""
    numbers = dict(zip(claims["arm"], claims["numbers"], strict=True)) if len(claims) else {}
    published, low, high = [], [], []
    for _, row in summary.iterrows():
        key = preferred_key(numbers.get(row["arm"], {}), metric, mode)
        ours = f"{metric}_{key[1] or 'std'}" if key else ""
        published.append(numbers[row["arm"]][key] if key else np.nan)
        low.append(row.get(f"{ours}_pi_low", np.nan) if key else np.nan)
        high.append(row.get(f"{ours}_pi_high", np.nan) if key else np.nan)
    arms = pd.DataFrame({
        "name": [f"{r.label} ({r.framework})" for r in summary.itertuples()],
        **{f"{m}_{x}": summary.get(f"{metric}_{m}_{x}", np.nan)
           for m in MODES for x in ("mean", "low", "high")},
        "published": published, "published_pi_low": low, "published_pi_high": high,
    })
    first = c[(c["family"] == "primary") & c["p"].notna()]
    # the interval at the family's level (alpha / m), the one that agrees with the verdict
    diffs = pd.DataFrame({"name": first["declared"], "diff": first["diff"],
                          "low": first["family_low"], "high": first["family_high"],
                          "margin": first["margin"], "resolved": first["p_holm"] < ALPHA})
    return arms, diffs.reset_index(drop=True)
