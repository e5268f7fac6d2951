"""The forest plot's data (`reports.figures.forest` draws it): per arm our means in both
evaluation modes beside the published single run, and per testable primary question the paired
difference with the interval that agrees with its verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.metrics import MODES
from reports.analysis.part3 import preferred
from reports.stats import ALPHA


def forest_data(summary: pd.DataFrame, claims: pd.DataFrame, c: pd.DataFrame, metric: str,
                mode: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the forest plot draws: per arm ours (std, MC) and the published number in the
    compared mode; per testable primary comparison the difference with its interval at the
    family's level, the equivalence margin and whether the difference survives Holm."""
    numbers = dict(zip(claims["arm"], claims["numbers"], strict=True)) if len(claims) else {}
    arms = pd.DataFrame({
        "name": [f"{r.label} ({r.framework})" for r in summary.itertuples()],
        **{f"{m}_{x}": summary.get(f"{metric}_{m}_{x}", np.nan)
           for m in MODES for x in ("mean", "low", "high")},
        "published": [preferred(numbers[a], metric, mode) if a in numbers else np.nan
                      for a in summary["arm"]],
    })
    first = c[(c["family"] == "primary") & c["p"].notna()]
    # the interval at the family's level (alpha / m), the one that agrees with the verdict
    diffs = pd.DataFrame({"name": first["declared"], "diff": first["diff"],
                          "low": first["family_low"], "high": first["family_high"],
                          "margin": first["margin"], "resolved": first["p_holm"] < ALPHA})
    return arms, diffs.reset_index(drop=True)
