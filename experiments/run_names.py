"""A run's name in the MLflow UI: framework/variant/task/s<seed>, then its preset and what tells
it apart from the other runs of its sweep.

Why: the UI's run table shows names, not params; a name that carries what the sweep varies lets
a reader find a run without opening it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from experiments.tracking import FRAMEWORK, PRESET, SEED, TASK, VARIANT

# Run names: framework/variant/task/s<seed>, then a label per other axis the run is not at its
# default on (`run_name`); the axes a sweep's jobs differ in reach each job from the launching
# process (experiments/launch.py), since a job sees only its own overrides.
NAMED_AXES = (FRAMEWORK, VARIANT, TASK, SEED)  # in every run's name


def varied_axes(jobs: Iterable[Sequence[str]]) -> list[str]:
    """The override keys whose value differs between a sweep's jobs (a key some jobs lack
    counts), but those every run's name has."""
    values = [dict(_split(line) for line in job) for job in jobs]
    keys = {key for job in values for key in job}
    return sorted(k for k in keys - set(NAMED_AXES) if len({job.get(k) for job in values}) > 1)


def run_name(framework: str, variant: str, task: str, seed: int, overrides: Iterable[str] = (),
             axes: Iterable[str] = (), preset: str | None = None) -> str:
    """framework/variant/task/s<seed>, then what tells the run apart from its sweep's others,
    so that the UI's run table shows it: its preset, and each override of `axes` (what the
    sweep varies) or of a knob (the cell, a dropout knob) that is not at its default, as
    leaf=value (`cell=gru`), in the order of their keys. A run at the defaults keeps the plain
    name."""
    from frameworks.variants import KNOBS

    named = {*axes, "model.cell", *(f"dropout.{k}" for k in KNOBS)}
    labels = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in sorted(map(_split, overrides))
              if key in named and key not in NAMED_AXES and key != PRESET
              and not key.startswith("hydra") and not _is_default(key, value)]
    return "/".join([framework, variant, task, f"s{seed}", *([preset] if preset else []),
                     *labels])


def _split(line: str) -> tuple[str, str]:
    key, _, value = line.partition("=")
    return key.lstrip("+~"), value


def _is_default(key: str, value: str) -> bool:
    """Whether an override's value is the schema's default for its key (a group choice, such
    as `model=tiny`, has none)."""
    default = _schema_default(key)
    default = getattr(default, "value", default)  # an enum: its name
    if isinstance(default, bool):
        return value.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(value) == float(default)
        except ValueError:
            return False
    return isinstance(default, str) and value.strip("'\"") == default


@functools.lru_cache(maxsize=256)
def _schema_default(key: str) -> object:
    from omegaconf import OmegaConf

    from experiments.config import Config

    return OmegaConf.select(OmegaConf.structured(Config), key, default=None)
