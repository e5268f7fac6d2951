"""Comparisons as a text table: the primary family's in section "Primary questions" (with its
interval and MDE at the family's level, the interval over seeds and test examples and the
equivalence margin), every comparison's in the appendix (with its family and question)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports import fmt


def table(c: pd.DataFrame, primary: bool = False) -> pd.DataFrame:
    """Comparisons as text; the appendix's version also names each row's family."""
    m = c["metric"].iloc[0]
    cols = {} if primary else {"family": [FAMILY_WORDS[f] for f in c["family"]],
                               "question": c["question"]}
    # a primary row's interval is at the level its verdict used (alpha / m), any other's at 95%
    level, low, high = (("CI at α/m", "family_low", "family_high") if primary
                        else ("95% CI", "low", "high"))
    frame = pd.DataFrame({
        **cols, "A": c["a"], "B": c["b"],
        "also differs in": [d or fmt.DASH for d in c["differs"]], "seeds": c["n"].astype(str),
        f"mean A ({fmt.metric_name(m)})": [fmt.num(m, x) for x in c["mean_a"]],
        "mean B": [fmt.num(m, x) for x in c["mean_b"]],
        f"A − B [{level}]": [f"{fmt.num(m, d, True)} {fmt.interval(m, lo, hi)}"
                             for d, lo, hi in zip(c["diff"], c[low], c[high], strict=True)],
        "d_z": [fmt.effect(x) for x in c["effect"]], "p": [fmt.pvalue(x) for x in c["p"]],
        "Holm p": [fmt.pvalue(x) if f != "exploratory" else "uncorrected"
                   for x, f in zip(c["p_holm"], c["family"], strict=True)],
        "MDE (80% power)": [fmt.diff_size(m, x) for x in c["mde"]], "verdict": c["verdict"],
    })
    if primary:  # the family's level and the equivalence test beside the verdict; d_z leaves
        frame = frame.drop(columns=["d_z"])
        frame.insert(len(frame.columns) - 1, "MDE at α/m", [
            fmt.diff_size(m, x) for x in c.get("mde_family", pd.Series(np.nan, c.index))])
        frame.insert(frame.columns.get_loc(f"A − B [{level}]") + 1,
                     "95% CI, seeds + test examples", [
                         fmt.interval(m, lo, hi) if fmt.finite(lo) else "no predictions logged"
                         for lo, hi in zip(c.get("low_both", pd.Series(np.nan, c.index)),
                                           c.get("high_both", pd.Series(np.nan, c.index)),
                                           strict=True)])
        frame.insert(len(frame.columns) - 1, "margin, TOST Holm p", [
            f"±{fmt.diff_size(m, r.margin)}, {fmt.pvalue(r.p_equiv_holm)}"
            if fmt.finite(getattr(r, "margin", np.nan)) else "none declared"
            for r in c.itertuples()])
    return frame


FAMILY_WORDS = {"primary": "primary", "exploratory": "exploratory (uncorrected)",
                 "all": "all (Holm, none declared)"}
