"""Which arms are compared: the questions the report asks of every sweep, and the pairs of arms
that answer them.

Automatically, two arms are compared only when they differ in the one factor asked about
(variant, framework, or one dropout knob) and agree on everything else that applies to both;
a declared (primary) pair is compared whatever else differs, and `differing` lists it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from frameworks.rules import applies
from reports.analysis.arms import order_key, short

UNTIED_TIED = [("keras_impl0", "keras_impl2"), ("keras_impl1", "keras_impl2"),
               ("weightdrop_column_untied", "weightdrop_column"),
               ("keras_impl0", "keras_impl1")]
WEIGHTDROP = [("weightdrop_variational", "weightdrop"), ("weightdrop_column", "weightdrop"),
              ("weightdrop_column", "weightdrop_variational")]
SAMPLE_BATCH = [("keras_impl2", "weightdrop_column"),
                ("keras_impl1", "weightdrop_column_untied")]
# Dropout inside the cell update: Semeniuta's candidate mask against the Gal mask it replaces
# (keras_impl2 drops h_{t-1} with one mask for all gates, the same rates and knobs), and
# zoneout, which has no rate in common with the other variants, against no dropout.
CELL = [("semeniuta", "keras_impl2"), ("zoneout", "none")]
# In the order the report lists them: the mask questions, the cell, then each variant against
# the baselines, the framework, and whatever single setting is left.
QUESTIONS = {
    "untied": "Untied (per-gate) vs tied masks (Keras impl 0/1 vs 2; impl 0 vs 1 is a check: "
              "same distribution)",
    "weightdrop": "WeightDrop masks: elementwise vs rows (awd variational) vs columns",
    "granularity": "Per-sample vs per-minibatch masks (dropout.granularity; the column mask is "
                   "the minibatch-shared form of Keras impl 2)",
    "cell": "Dropout inside the cell update: Semeniuta (candidate update only) vs Gal's tied "
            "mask on h (keras_impl2), and zoneout vs no dropout",
    "gru": "GRU vs LSTM cell (model.cell), same variant, framework and setting",
    "none": "Each variant vs no dropout",
    "naive": "Each variant vs naive (Zaremba) dropout",
    "framework": "PyTorch vs Keras, same variant and setting",
    "other": "Other single-setting differences",
}


@dataclass(frozen=True)
class Arm:
    """One arm as the comparisons see it: its id, label, task, framework, variant, semantic
    setting and preset."""

    arm: str
    label: str
    task: str
    framework: str
    variant: str
    setting: dict
    preset: str = ""


def cell_of(arm: Arm) -> str:
    """The arm's model.cell; runs logged before the GRU existed lack it and are LSTMs."""
    return arm.setting.get("model.cell", "lstm")


def differences(a: Arm, b: Arm) -> list[str]:
    """Setting keys that differ between two arms and matter for both of them (a dropout key
    that has no effect for one arm's variant or cell, frameworks/rules.py `applies`, does
    not count)."""
    keys = sorted(set(a.setting) | set(b.setting))
    return [k for k in keys if a.setting.get(k) != b.setting.get(k)
            and (not k.startswith("dropout.")
                 or (applies(k, a.variant, cell_of(a)) and applies(k, b.variant, cell_of(b))))]


def pairs(arms: list[Arm]) -> list[tuple[str, Arm, Arm]]:
    """(question, A, B) for every comparable pair, grouped by question in QUESTIONS' order;
    each unordered pair once, the first question in that order wins."""
    out: list[tuple[str, Arm, Arm]] = []
    seen: set[frozenset[str]] = set()

    def add(question: str, a: Arm, b: Arm) -> None:
        key = frozenset((a.arm, b.arm))
        if key not in seen and a.arm != b.arm:
            seen.add(key)
            out.append((question, a, b))

    def variant_pairs(question: str, wanted: list[tuple[str, str]]) -> None:
        for va, vb in wanted:
            for a in arms:
                for b in arms:
                    if (a.variant, b.variant) == (va, vb) and a.framework == b.framework \
                            and not differences(a, b):
                        add(question, a, b)

    variant_pairs("untied", UNTIED_TIED)
    variant_pairs("weightdrop", WEIGHTDROP)
    for a in arms:
        for b in arms:
            if _one_knob(a, b) == "dropout.granularity" and a.setting[
                    "dropout.granularity"] == "sample":
                add("granularity", a, b)
    variant_pairs("granularity", SAMPLE_BATCH)
    variant_pairs("cell", CELL)
    for a in arms:
        for b in arms:
            if a.variant == b.variant and a.framework == b.framework \
                    and (cell_of(a), cell_of(b)) == ("gru", "lstm") \
                    and differences(a, b) == ["model.cell"]:
                add("gru", a, b)
    variants = sorted({a.variant for a in arms})
    variant_pairs("none", [(v, "none") for v in variants if v != "none"])
    variant_pairs("naive", [(v, "naive") for v in variants if v not in ("none", "naive")])
    for a in arms:
        for b in arms:
            if (a.framework, b.framework) == ("torch", "keras") and a.variant == b.variant \
                    and a.setting == b.setting:
                add("framework", a, b)
    for a in arms:
        for b in arms:
            knob = _one_knob(a, b)
            if knob and knob != "dropout.granularity" and a.setting.get(knob, "") < \
                    b.setting.get(knob, ""):
                add("other", a, b)
    order = list(QUESTIONS)
    return sorted(out, key=lambda x: order.index(x[0]) if x[0] in order else len(order))


def _one_knob(a: Arm, b: Arm) -> str | None:
    """The single setting key in which two arms of one variant and framework differ."""
    if a.variant != b.variant or a.framework != b.framework:
        return None
    diff = [k for k in set(a.setting) | set(b.setting) if a.setting.get(k) != b.setting.get(k)]
    return diff[0] if len(diff) == 1 else None


def differing(a: Arm, b: Arm) -> list[str]:
    """What besides the seed differs between two arms: framework, variant, and every setting
    that matters to both (`differences`), as "key A vs B"."""
    out = []
    if a.framework != b.framework:
        out.append(f"framework {a.framework} vs {b.framework}")
    if a.variant != b.variant:
        out.append(f"variant {a.variant} vs {b.variant}")
    for key in differences(a, b):
        out.append(f"{short(key)} {a.setting.get(key, '∅')} vs {b.setting.get(key, '∅')}")
    return out


def arm_list(runs: pd.DataFrame, order: list[str]) -> list[Arm]:
    """The arms of some runs (one task) in report order."""
    return sorted((Arm(r.arm, r.label, r.task, r.framework, r.variant, r.setting, r.preset)
                   for r in runs.drop_duplicates("arm").itertuples()),
                  key=lambda a: (*order_key(a.label, order), a.framework))
