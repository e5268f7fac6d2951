"""`${tuned:<stage>}`: a value chosen on validation by an earlier sweep of a study (its tuning
stage), read from the store when a run's config is composed.

Why: a pre-registered study tunes a rate with fewer seeds first (stage 1), then fixes it for the
runs that answer its questions (stage 2). The rule is declared in stage 1's sweep file; this
resolver applies it, so the chosen value stands in every stage-2 run's config and config hash,
nothing is copied by hand, and the test set plays no part.

The rule: the completed runs of every launch of the sweep whose preset is `<stage>` (tag
`sweep_preset` of their parents), those of the variant of the config node that asks (its
sibling `variant`), grouped by the value they ran at the asking key (e.g. `dropout.weight`);
the value with the lowest mean validation log-loss (standard evaluation, at each run's selected
epoch) wins, a tie goes to the lower value. Until a launch of the stage has finished, the
config is refused in one line naming the key, the stage and what to run.

Each run that took a value this way says so in its tag `tuned_from` (`asked`, `tag`), so its
report can show the stage's grid beside the value chosen (reports/store/tuning.py).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from experiments import tracking_store
from experiments.metrics import BEST_EPOCH, STD, VALID, key
from frameworks.spec import SpecError

METRIC = key(VALID, "log_loss", STD)  # the selection metric of the rule (lower is better)
_ASKS = re.compile(r"^\$\{tuned:\s*([^}\s]+)\s*\}$")  # a whole value `${tuned:<stage>}`


def asked(node: Any, prefix: str = "") -> dict[str, str]:
    """{dotted config key: stage} of every value `node` (a DictConfig, unresolved) takes from a
    study's earlier stage; a value given outright (a stage-1 grid point) asks nothing."""
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else node
    found: dict[str, str] = {}
    for name, value in plain.items() if isinstance(plain, dict) else ():
        if isinstance(value, dict):
            found |= asked(value, f"{prefix}{name}.")
        elif isinstance(value, str) and (match := _ASKS.match(value)):
            found[f"{prefix}{name}"] = match.group(1)
    return found


def tag(stages: Mapping[str, str]) -> str:
    """The tag `tuned_from` of a run: `key=stage`, one per line, sorted."""
    return "\n".join(f"{k}={v}" for k, v in sorted(stages.items()))


def parse_tag(text: str | None) -> dict[str, str]:
    """The tag `tuned_from` read back: {key: stage} (empty for a run without it)."""
    pairs = (line.split("=", 1) for line in (text or "").splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def choose(results: dict[float, list[float]]) -> float:
    """The value with the lowest mean metric; ties to the lower value."""
    return min(results, key=lambda value: (statistics.fmean(results[value]), value))


def stage_results(uri: str, experiment: str, stage: str, variant: str,
                  key: str) -> dict[float, list[float]]:
    """{value at `key`: [validation log-loss at the selected epoch, one per run]} of the
    completed runs of the stage's launches with `variant`; SpecError where the stage has no
    finished launch in this store."""
    from mlflow.tracking import MlflowClient

    from experiments import tracking as T

    asked = f"{key}=${{tuned:{stage}}}"
    run_first = f"run stage `make sweep PRESET={stage}` first"
    if not tracking_store.store_exists(uri):
        raise SpecError(f"{asked}: the store {uri} does not exist; {run_first}")
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    parents = [] if found is None else client.search_runs(
        [found.experiment_id], f"{T.tag_equals(T.IS_SWEEP_PARENT, 'true')} and "
                               f"{T.tag_equals(T.SWEEP_PRESET, stage)}")
    if not any(p.info.status == "FINISHED" for p in parents):
        raise SpecError(f"{asked}: no launch of sweep {stage} has finished in {uri} "
                        f"(experiment {experiment}); {run_first}")
    results: dict[float, list[float]] = defaultdict(list)
    for parent in parents:
        children = client.search_runs(
            [found.experiment_id], f"{T.tag_equals(T.PARENT_RUN_ID, parent.info.run_id)} and "
                                   f"{T.tag_equals(T.COMPLETED, 'true')} and "
                                   f"{T.tag_equals(T.VARIANT, variant)}")
        for run in children:
            best = int(run.data.metrics[BEST_EPOCH])
            history = client.get_metric_history(run.info.run_id, METRIC)
            value = next(m.value for m in history if m.step == best)
            results[float(run.data.params[key])].append(value)
    if not results:
        raise SpecError(f"{asked}: sweep {stage} has no completed run of variant {variant}")
    return dict(results)


def _plain(value: Any) -> str:
    """An enum member's value (a typed config's variant, task), else the string."""
    return str(getattr(value, "value", value))


def resolver(stage: str, *, _node_: Any, _parent_: Any, _root_: Any) -> float:
    """The OmegaConf resolver `tuned` (registered by experiments.config.register)."""

    key = f"{_parent_._get_full_key(None)}.{_node_._key()}".lstrip(".")
    uri = tracking_store.default_uri() if _root_.tracking.uri is None else str(_root_.tracking.uri)
    experiment = _root_.tracking.experiment or _plain(_root_.task.name)
    variant = _plain(_parent_.variant)
    return choose(stage_results(uri, experiment, stage, variant, key))
