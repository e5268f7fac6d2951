"""Paired comparisons: the primary ones a sweep declared, and the pairs found automatically.

Automatically, two arms are compared only when they differ in the one factor asked about
(variant, framework, or one dropout knob) and agree on everything else that applies to both;
declared (primary) pairs are compared whatever else differs, and the differences are listed.
Runs are paired by seed (same seed = same initial weights and batches in both frameworks). Per
comparison: mean difference A - B with its 95% t interval, Cohen's d_z, a paired t-test, the
minimum difference the design detects with 80% power, and Holm's correction within the primary
family only; the automatic pairs are then exploratory and uncorrected, and only when a sweep
declared nothing are they Holm-corrected as one family (the behaviour before primary families).

A primary comparison ends in one of four verdicts: A better, B better (Holm over the family),
equivalent within the sweep's declared margin (`study.margin`: paired two one-sided tests,
Holm over the family too), or undecided. An undecided one carries its price: the seeds a design
would need to detect the observed difference, or to show equivalence, at the family's level
(alpha / m, Holm's first step) with 80% power, and the CPU-hours that many seeds cost from the
runs' own logged times.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.metrics import TEST
from experiments.metrics import key as metric_key
from reports import answers, fmt
from reports.arms import short
from reports.load import HIGHER_IS_BETTER
from reports.stats import ALPHA, holm, minimum_detectable, paired
from reports.tables import RUN_HOURS

KNOBS = ("granularity", "output_mode", "eval_active")
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
    arm: str
    label: str
    task: str
    framework: str
    variant: str
    setting: dict
    preset: str = ""


def applicable(key: str, variant: str, cell: str | None = None) -> bool:
    """Whether a dropout key has an effect for `variant` (rates it uses, knobs it allows, as
    its registry entry says) in `cell` (a rate on a state the cell lacks, like zoneout_cell in a
    GRU, has none); unknown variants, cells and keys count as applicable."""
    from frameworks import variants

    leaf = key.rsplit(".", 1)[-1]
    state = variants.RATE_STATE.get(leaf)
    if state and cell in variants.CELLS and state not in variants.CELLS[cell].state:
        return False
    if variant not in variants.REGISTRY:
        return True
    return variants.uses(variant, key)


def cell_of(arm: Arm) -> str:
    """The arm's model.cell; runs logged before the GRU existed lack it and are LSTMs."""
    return arm.setting.get("model.cell", "lstm")


def differences(a: Arm, b: Arm) -> list[str]:
    """Setting keys that differ between two arms and matter for both of them."""
    keys = sorted(set(a.setting) | set(b.setting))
    return [k for k in keys if a.setting.get(k) != b.setting.get(k)
            and (not k.startswith("dropout.")
                 or (applicable(k, a.variant, cell_of(a))
                     and applicable(k, b.variant, cell_of(b))))]


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


def compare(per: pd.DataFrame, arms: list[Arm], metric: str, mode: str,
            family: str = "task", primary: list | None = None,
            predictions: dict | None = None) -> pd.DataFrame:
    """Every comparison of one task on `test_<metric>_<mode>`.

    With declared primary comparisons (`reports.primary.Resolved`), those are the primary
    family, Holm-adjusted over the declared family (one that cannot be tested counts as not
    rejected), and every other automatic pair is exploratory with its unadjusted p. Without,
    the automatic pairs are Holm-adjusted as before: as one family (`family="task"`) or per
    question (`family="question"`). Every row carries the minimum detectable difference."""
    column = metric_key(TEST, metric, mode)
    values = {arm: dict(zip(g["seed"], g[column], strict=True))
              for arm, g in per.groupby("arm")}
    hours = {arm: float(g[RUN_HOURS].mean()) if RUN_HOURS in g else np.nan
             for arm, g in per.groupby("arm")}
    rows = [_row("primary", "declared", p.a, p.b, values, metric, mode, p.text, p.problem,
                 p.differs) for p in primary or []]
    for row, p in zip(rows, primary or [], strict=True):
        row["margin"] = answers.margin_for(getattr(p, "margins", {}), metric, row["mean_b"])
        row["declared_seeds"] = getattr(p, "declared_seeds", 0)
    taken = {frozenset((p.a.arm, p.b.arm)) for p in primary or [] if p.a and p.b}
    rest = "exploratory" if primary else "all"
    rows += [_row(rest, question, a, b, values, metric, mode, "", "", differing(a, b))
             for question, a, b in pairs(arms) if frozenset((a.arm, b.arm)) not in taken]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["p_holm"] = np.nan
    first = frame[frame["family"] == "primary"].index
    if len(first):  # untestable members count as p = 1: the declared family keeps its size
        padded = frame.loc[first, "p"].fillna(1.0).tolist()
        frame.loc[first, "p_holm"] = holm(padded)
        frame.loc[frame.index.isin(first) & frame["p"].isna(), "p_holm"] = np.nan
        answers.equivalence_and_cost(frame, first, values, hours)
        answers.with_test_sampling(frame, first, predictions or {}, metric, mode)
    every = frame[frame["family"] == "all"]
    groups = [every.index] if family == "task" else \
        [g.index for _, g in every.groupby("question", sort=False)]
    for idx in groups:
        if len(idx):
            frame.loc[idx, "p_holm"] = holm(frame.loc[idx, "p"].tolist())
    frame["verdict"] = [verdict(r) for r in frame.itertuples()]
    frame["sentence"] = [sentence(r) for r in frame.itertuples()]
    return frame


COLUMNS = ["family", "question", "declared", "problem", "differs", "a", "b", "a_arm", "b_arm",
           "framework", "metric", "mode", "n", "seeds", "mean_a", "mean_b", "diff", "low",
           "high", "sd", "effect", "p", "mde", "margin", "declared_seeds", "alpha_family",
           "mde_family", "p_equiv", "p_equiv_holm", "seeds_detect", "seeds_equiv",
           "cpu_hours_detect", "cpu_hours_equiv", "family_low", "family_high", "low_both",
           "high_both"]


def _row(family: str, question: str, a: Arm | None, b: Arm | None, values: dict, metric: str,
         mode: str, declared: str, problem: str, differs: list[str]) -> dict:
    va = values.get(a.arm, {}) if a else {}
    vb = values.get(b.arm, {}) if b else {}
    seeds = sorted(set(va) & set(vb))
    res = paired([va[s] for s in seeds], [vb[s] for s in seeds])
    names = declared.split(" vs ", 1) + [""] if declared else ["", ""]
    fa = a.framework if a else (b.framework if b else "?")
    fb = b.framework if b else fa
    return {
        "family": family, "question": question, "declared": declared, "problem": problem,
        "differs": "; ".join(differs), "a": a.label if a else names[0],
        "b": b.label if b else names[1], "a_arm": a.arm if a else "", "b_arm": b.arm if b else "",
        "framework": fa if fa == fb else f"{fa} vs {fb}",
        "metric": metric, "mode": mode, "n": res.n, "seeds": ",".join(map(str, seeds)),
        "mean_a": res.mean_a, "mean_b": res.mean_b, "diff": res.diff.mean,
        "low": res.diff.low, "high": res.diff.high, "sd": res.diff.sd,
        "effect": res.effect, "p": res.p, "mde": minimum_detectable(res.diff.sd, res.n),
    }


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


def corrected(r) -> bool:
    """Whether a row's test is adjusted for multiplicity (exploratory rows are not)."""
    return getattr(r, "family", "all") != "exploratory"


def p_used(r) -> float:
    return r.p_holm if corrected(r) else r.p


def verdict(r) -> str:
    """A primary comparison: "A better", "B better" (Holm), "equivalent within ±margin" (TOST,
    Holm) or "undecided"; an exploratory one keeps the screening words, marked uncorrected."""
    p, tag = p_used(r), "" if corrected(r) else " (uncorrected)"
    if getattr(r, "problem", ""):
        return f"not testable: {r.problem}"
    if r.n < 2 or not fmt.finite(p):
        return f"not testable ({r.n} paired seed{'s' if r.n != 1 else ''})"
    primary = getattr(r, "family", "") == "primary"
    if p >= ALPHA:
        if not primary:
            return "no detectable difference" + (" (identical)" if _identical(r) else "") + tag
        if fmt.finite(getattr(r, "p_equiv_holm", np.nan)) and r.p_equiv_holm < ALPHA:
            return f"equivalent within ±{fmt.diff_size(r.metric, r.margin)}"
        return "undecided" + ("" if fmt.finite(getattr(r, "margin", np.nan))
                              else " (no equivalence margin declared)")
    higher = HIGHER_IS_BETTER.get(r.metric, True)
    better = (r.diff > 0) == higher
    if primary:
        names = _names(r)
        return f"{names[1] if better else names[2]} better"
    return f"{_names(r)[1]} {'better' if better else 'worse'}{tag}"


def _names(r) -> tuple[str, str, str]:
    """(who, name of A, name of B): a declared comparison goes by the names the sweep used, a
    framework comparison names the frameworks."""
    if getattr(r, "declared", ""):
        a, _, b = r.declared.partition(" vs ")
        return r.declared + (f" ({r.framework})" if r.framework != "?" else ""), a, b
    if getattr(r, "question", "") == "framework":
        fa, fb = r.framework.split(" vs ")
        return f"{r.a}, {fa} vs {fb}", fa, fb
    return f"{r.a} vs {r.b} ({r.framework})", r.a, r.b


def sentence(r) -> str:
    """One comparison in words, with the numbers that back it."""
    m = r.metric
    who, name_a, name_b = _names(r)
    if getattr(r, "problem", ""):
        return f"{who}: not testable ({r.problem})."
    values = (f"{fmt.metric_name(m)} {fmt.num(m, r.mean_a)} vs {fmt.num(m, r.mean_b)} "
              f"({r.mode}, test)")
    p = p_used(r)
    if r.n < 2 or not fmt.finite(p):
        return f"{who}: {values}; not testable with {r.n} paired seed(s)."
    if _identical(r):
        return f"{who}: identical results in all {r.n} paired seeds ({values})."
    adjusted = f"Holm p {fmt.pvalue(r.p_holm)}" if corrected(r) else "uncorrected"
    stats = (f"difference {fmt.with_unit(m, r.diff, True)}, 95% CI "
             f"{fmt.interval(m, r.low, r.high)}, d_z {fmt.effect(r.effect)}, "
             f"p {fmt.pvalue(r.p)}, {adjusted}, n={r.n}")
    mde = getattr(r, "mde", float("nan"))
    power = (f"; with {r.n} seeds and this spread, a difference of {fmt.diff_size(m, mde)} "
             "would be detected with 80% power at α = 0.05" if fmt.finite(mde) else "")
    if getattr(r, "family", "") == "primary":
        return _primary_sentence(r, who, name_a, name_b, values, stats)
    if p >= ALPHA:
        bound = max(abs(r.low), abs(r.high)) if fmt.finite(r.low) else abs(r.diff)
        before = ""
        if fmt.finite(r.low) and (r.low > 0 or r.high < 0) and corrected(r):
            before = " (the unadjusted interval excludes zero: suggestive, not established)"
        after = " after correction" if corrected(r) else ""
        return (f"{who}: no detectable difference{after}{before} ({values}; {stats}); "
                f"differences up to {fmt.num(m, bound)}{fmt.unit(m, diff=True)} are not ruled "
                f"out{power}.")
    word = "better" if (r.diff > 0) == HIGHER_IS_BETTER.get(m, True) else "worse"
    return f"{who}: {name_a} is {word} than {name_b} ({values}; {stats})."


def _primary_sentence(r, who: str, name_a: str, name_b: str, values: str, stats: str) -> str:
    """A primary comparison in words: its verdict, the numbers behind it, the design's reach at
    the family's level and, when undecided, what an answer would cost."""
    m = r.metric
    level = (f"the family's level α/m = {r.alpha_family:.4g} (Holm's first step)"
             if fmt.finite(r.alpha_family) else "the family's level")
    reach = (f"; at {level} this design detects {fmt.diff_size(m, r.mde_family)} with 80% "
             f"power ({fmt.diff_size(m, r.mde)} at α = 0.05 before correction)"
             if fmt.finite(r.mde_family) else "")
    margin = (f"; equivalence margin ±{fmt.diff_size(m, r.margin)}, TOST Holm p "
              f"{fmt.pvalue(r.p_equiv_holm)}" if fmt.finite(r.margin) else "")
    both = getattr(r, "low_both", np.nan), getattr(r, "high_both", np.nan)
    if fmt.finite(both[0]):  # the fixed test set's sampling, beside the seeds
        fragile = r.p_holm < ALPHA and both[0] <= 0 <= both[1]
        margin += (f"; over seeds and test examples together, 95% CI "
                   f"{fmt.interval(m, *both)}"
                   + (": **not robust to the test set's sampling**" if fragile else ""))
    if r.p_holm < ALPHA:
        word = "better" if (r.diff > 0) == HIGHER_IS_BETTER.get(m, True) else "worse"
        return f"{who}: {name_a} is {word} than {name_b} ({values}; {stats}{margin})."
    if r.verdict.startswith("equivalent"):
        return (f"{who}: **{r.verdict}** ({values}; {stats}{margin}): both one-sided tests "
                "reject a difference beyond the margin.")
    return (f"{who}: **undecided** ({values}; {stats}{margin}){reach}. What an answer would "
            f"cost: {answers.cost_of_answer(r)}.")


def _identical(r) -> bool:
    return r.n >= 2 and r.sd == 0 and r.diff == 0
