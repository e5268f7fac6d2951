"""The report's view of the metrics: which metrics each task has (its selection metric first)
and which way each one is better. Every layer needs these (reading the store, the tables, the
figures, the words), so they live apart from all of them."""

from __future__ import annotations

from collections.abc import Iterable

from experiments import metrics as M
from experiments.metrics import METRICS, TEST, parse_key
from experiments.tasks import TASK_KINDS

# Selection metric first: it picks the best epoch and is the primary metric of the report.
TASK_METRICS = {task: tuple(METRICS[kind]) for task, kind in TASK_KINDS.items()}
# and RMSE, the metric of Part 3's Cornell numbers (conf/published.yaml)
HIGHER_IS_BETTER = {**M.HIGHER_IS_BETTER, "rmse": False}


def task_metrics(task: str, metric_keys: Iterable[str] = ()) -> tuple[str, ...]:
    """The metrics of a task, selection metric first; unknown tasks are inferred from the
    logged `test_<metric>_std|mc` keys."""
    if task in TASK_METRICS:
        return TASK_METRICS[task]
    found = sorted({p[1] for k in metric_keys if (p := parse_key(k)) and p[0] == TEST})
    return tuple(found)
