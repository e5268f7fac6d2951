"""The grids behind tuned values: for the report's runs that took a value from a study's earlier
stage (tag `tuned_from`, experiments/tuned.py), that stage's results per arm and value, read and
ranked by the same rule the runs applied, so the report shows what was chosen from what.

Why: a stage-2 arm's rate is a choice, and a reviewer asks from which grid, on which metric and
by how much it won; the rule itself lives in experiments/tuned.py and is only called here.
"""

from __future__ import annotations

import statistics

import pandas as pd

from experiments import tracking as T
from experiments import tuned
from frameworks.spec import SpecError

COLUMNS = ["task", "experiment", "variant", "key", "stage", "value", "runs", "mean",
           "chosen", "ran_at", "missing"]


def grids(uri: str, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, arm's variant, tuned key, stage, value of the stage's grid): the stage's
    completed runs at that value, their mean validation log-loss (standard evaluation, at each
    run's selected epoch), whether the rule chooses it now, and the values the report's runs ran
    at (`ran_at`, sorted). A stage the store no longer holds gives one row with `missing` (the
    refusal's words) and no value."""
    asked = [(run[T.TASK], run["experiment"], run[T.VARIANT], k, stage, run["params"].get(k))
             for _, run in runs.iterrows()
             for k, stage in tuned.parse_tag(run["tags"].get(T.TUNED_FROM)).items()]
    rows = []
    for (task, experiment, variant, k, stage), group in _grouped(asked).items():
        ran_at = sorted({float(v) for v in group if v is not None})
        try:
            results = tuned.stage_results(uri, experiment, stage, variant, k)
        except SpecError as e:
            rows.append([task, experiment, variant, k, stage, None, 0, None, False, ran_at,
                         str(e)])
            continue
        chosen = tuned.choose(results)
        rows += [[task, experiment, variant, k, stage, value, len(losses),
                  statistics.fmean(losses), value == chosen, ran_at, None]
                 for value, losses in sorted(results.items())]
    return pd.DataFrame(rows, columns=COLUMNS)


def _grouped(asked: list[tuple]) -> dict[tuple, list]:
    """{(task, experiment, variant, key, stage): [the value each run ran at]}."""
    out: dict[tuple, list] = {}
    for *where, value in asked:
        out.setdefault(tuple(where), []).append(value)
    return out
