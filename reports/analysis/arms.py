"""Arms: the groups of runs that differ only by seed.

Runs are averaged only within an arm (task, framework, variant and every semantic parameter
equal), so a sweep over, say, mask granularity or model size never mixes settings. An arm's label
is its variant plus the parameters that distinguish it from other runs of the same task, e.g.
`keras_impl2 [granularity=batch]`. Runs of a preset (tag `preset`) are labelled by the preset:
`naive [part3_imdb_torch_naive]`, since a preset fixes many settings at once (Part 3's arms
differ in learning rate, weight decay and rates) and its name is what the sweep's primary
comparisons refer to; qualifiers are then computed among runs of the same preset only.
"""

from __future__ import annotations

import pandas as pd

from experiments import tracking as T
from frameworks import rules

# Never part of an arm: the replication unit, the compared framework and variant, and the
# settings that change neither the model nor the numbers (frameworks/rules.py NON_SEMANTIC: a
# dotted key as itself, a section by its prefix) or only record how a run was computed.
IGNORED = ("seed", "framework.name", "task.name", "dropout.variant", T.THREADS_PARAM,
           T.COMPUTE_PATH_PARAM, *(k for k in rules.NON_SEMANTIC if "." in k))
IGNORED_PREFIXES = tuple(f"{k}." for k in rules.NON_SEMANTIC if "." not in k)
# Keys added after runs were logged (frameworks/rules.py ADDED_LATER), as MLflow logs the value
# that reproduces the older behaviour (a string): an older run lacks the param, and must land
# in the same arm as a newer run at that value.
ADDED_LATER = {key: str(value) for key, value in rules.ADDED_LATER.items()}


def semantic(params: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in params.items()
           if k not in IGNORED and not k.startswith(IGNORED_PREFIXES)}
    return {**ADDED_LATER, **out}


def preset_of(tags: object) -> str:
    """The preset a run was composed from ('' when none: a plain grid run)."""
    return tags.get(T.PRESET, "") if isinstance(tags, dict) else ""


def assign(runs: pd.DataFrame) -> pd.DataFrame:
    """Add `arm` (unique id), `label` (variant + qualifier), `qualifier`, `preset` and `setting`
    (the semantic params as a dict) to a copy of `runs`."""
    out = runs.copy()
    out["setting"] = [semantic(p) for p in out["params"]]
    out["preset"] = [preset_of(t) for t in out["tags"]] if "tags" in out else ""
    labels: dict[int, str] = {}
    for (_, preset), group in out.groupby(["task", "preset"], sort=False):
        keys = _distinguishing(group)
        for idx, row in group.iterrows():
            quals = [f"{short(k)}={row.setting.get(k, '∅')}" for k in keys(row.variant)]
            labels[idx] = ", ".join([preset, *quals] if preset else quals)
    out["qualifier"] = pd.Series(labels)
    out["label"] = [f"{v} [{q}]" if q else v for v, q in zip(out["variant"], out["qualifier"],
                                                               strict=True)]
    out["arm"] = [f"{t}|{f}|{lab}" for t, f, lab in zip(out["task"], out["framework"],
                                                       out["label"], strict=True)]
    return out


def _distinguishing(group: pd.DataFrame):
    """Keys that vary among runs of one task: context keys (model, data, training) anywhere in
    the task, dropout keys within a variant. Keys that vary in lockstep with an earlier key
    (e.g. model.size and hidden_size) are shown once."""
    settings = list(group["setting"])
    variants = list(group["variant"])
    all_keys = sorted({k for s in settings for k in s})
    context = [k for k in all_keys if not k.startswith("dropout.")
               and _varies([s.get(k) for s in settings])]
    context = _drop_lockstep(context, settings)
    per_variant: dict[str, list[str]] = {}
    for variant in set(variants):
        mine = [s for s, v in zip(settings, variants, strict=True) if v == variant]
        keys = [k for k in all_keys if k.startswith("dropout.")
                and _varies([s.get(k) for s in mine])]
        per_variant[variant] = _drop_lockstep(keys, mine)
    return lambda variant: [*context, *per_variant.get(variant, [])]


def _varies(values: list) -> bool:
    return len(set(values)) > 1


def _drop_lockstep(keys: list[str], settings: list[dict[str, str]]) -> list[str]:
    kept, partitions = [], []
    for k in sorted(keys, key=lambda k: (not k.endswith(".size"), k)):
        part = _partition([s.get(k) for s in settings])
        if part not in partitions:
            partitions.append(part)
            kept.append(k)
    return kept


def _partition(values: list) -> frozenset[frozenset[int]]:
    groups: dict[object, set[int]] = {}
    for i, v in enumerate(values):
        groups.setdefault(v, set()).add(i)
    return frozenset(frozenset(g) for g in groups.values())


def short(key: str) -> str:
    """`dropout.granularity` -> `granularity`; keeps the prefix where the leaf is ambiguous."""
    leaf = key.rsplit(".", 1)[-1]
    return key if leaf in {"name", "size"} and not key.startswith("model.") else leaf


def order_key(label: str, variant_order: list[str]) -> tuple[int, str]:
    """Sort arms in the Variant enum's order (none, naive, ... as in SEMANTICS.md)."""
    variant = label.split(" [", 1)[0]
    rank = variant_order.index(variant) if variant in variant_order else len(variant_order)
    return rank, label


def variant_order() -> list[str]:
    from frameworks.spec import Variant

    seen: list[str] = []
    for v in Variant:
        if v.value not in seen:
            seen.append(v.value)
    return seen
