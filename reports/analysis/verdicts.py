"""A comparison in words: its verdict (four for a primary question, screening words for an
exploratory pair) and the sentence with the numbers that back it."""

from __future__ import annotations

import numpy as np

from reports import fmt
from reports.analysis.family import cost_of_answer
from reports.metrics import HIGHER_IS_BETTER
from reports.stats import ALPHA


def corrected(r) -> bool:
    """Whether a row's test is adjusted for multiplicity (exploratory rows are not)."""
    return getattr(r, "family", "all") != "exploratory"


def p_used(r) -> float:
    """The p-value a row's verdict reads: Holm's where the row is corrected, else its own."""
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


def family_interval(r) -> str:
    """A primary difference's interval at the level its verdict used: the t interval at the
    family's level alpha / m (Bonferroni, Holm's first step), labelled with its coverage. An
    undecided verdict's interval always holds 0 (Holm p >= alpha implies p >= alpha / m); a win
    at a later Holm step can touch 0, which the words then say."""
    m, low, high = r.metric, getattr(r, "family_low", np.nan), getattr(r, "family_high", np.nan)
    if not fmt.finite(low):
        return ""
    text = (f"family-adjusted {100 * (1 - r.alpha_family):.4g}% CI "
            f"{fmt.interval(m, low, high)}")
    if r.p_holm < ALPHA and low <= 0 <= high:
        text += " (it holds 0: Holm's later steps test at a level above α/m)"
    return text


def _primary_sentence(r, who: str, name_a: str, name_b: str, values: str, stats: str) -> str:
    """A primary comparison in words: its verdict, the numbers behind it, the design's reach at
    the family's level and, when undecided, what an answer would cost."""
    m = r.metric
    level = (f"the family's level α/m = {r.alpha_family:.4g} (Holm's first step)"
             if fmt.finite(r.alpha_family) else "the family's level")
    reach = (f"; at {level} this design detects {fmt.diff_size(m, r.mde_family)} with 80% "
             f"power ({fmt.diff_size(m, r.mde)} at α = 0.05 before correction)"
             if fmt.finite(r.mde_family) else "")
    adjusted = family_interval(r)
    stats += f", {adjusted}" if adjusted else ""
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
            f"cost: {cost_of_answer(r)}.")


def _identical(r) -> bool:
    """Both arms gave the same value in every paired seed."""
    return r.n >= 2 and r.sd == 0 and r.diff == 0
