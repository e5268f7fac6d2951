"""Part 3 beside us: the single numbers a preset reproduces, against our seeds.

A preset that reproduces a published experiment (conf/preset/part3_imdb_*.yaml) has an entry of
the same name with `match: preset` in conf/published.yaml, the one copy of its numbers: source,
setting, stated differences (`caveat`) and test numbers per metric and mode (std or mc, or
unstated: then compared with our standard evaluation). Runs name their preset in the tag
`preset`; this module looks the entry up by it, places each number beside our mean and 95%
interval, ranks the arms both ways and says, per primary comparison, whether the source's
conclusion holds (right), is reversed (wrong) or lies within seed noise. Runs logged before the
data file also carry the numbers as `published.*` params; those are not read.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from experiments import tracking as T
from experiments.metrics import MODES
from reports import fmt, published
from reports.compare import corrected, p_used
from reports.load import HIGHER_IS_BETTER, task_metrics
from reports.stats import ALPHA

NOTES = "abcdefghijklmnopqrstuvwxyz"


def _common(values) -> str:
    found = Counter(v for v in values if v)
    return found.most_common(1)[0][0] if found else ""


def claims(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per arm whose preset (its runs' most common `preset` tag) has an entry with
    `match: preset` in conf/published.yaml: source, setting, note (the entry's caveat),
    select_on and the numbers {(metric, mode): value}, mode '' when not stated."""
    rows = []
    for arm, g in runs.groupby("arm", sort=False):
        preset = _common(g["preset"]) if "preset" in g else \
            _common(t.get(T.PRESET, "") for t in g["tags"])
        entry = published.by_preset(preset) if preset else None
        if entry is None:
            continue
        first = task_metrics(g["task"].iloc[0], g["metrics"].iloc[0])
        rows.append({
            "arm": arm, "label": g["label"].iloc[0], "framework": g["framework"].iloc[0],
            "task": g["task"].iloc[0], "source": entry.source, "setting": entry.setting,
            "note": entry.caveat,
            T.SELECT_ON: _common(t.get(T.SELECT_ON, "") for t in g["tags"])
            or (first[0] if first else ""),
            "numbers": dict(entry.test),
        })
    return pd.DataFrame(rows, columns=["arm", "label", "framework", "task", "source", "setting",
                                       "note", T.SELECT_ON, "numbers"])


def preferred(numbers_: dict[tuple[str, str], float], metric: str, mode: str) -> float:
    """The source's number for `metric` to set against our `mode`: the same mode, else the one
    whose mode was not stated, else the other mode; NaN when it gave none."""
    other = "mc" if mode == "std" else "std"
    for key in ((metric, mode), (metric, ""), (metric, other)):
        if key in numbers_:
            return numbers_[key]
    return np.nan


def table(found: pd.DataFrame, summary: pd.DataFrame, rank_metric: str) -> pd.DataFrame:
    """One row per published number: ours in the mode it is compared with (std when the source
    did not say), whether it lies inside our 95% interval, and both rankings of the arms by
    `rank_metric` (the source's std-or-unstated number; ours: standard evaluation)."""
    s = summary.set_index("arm")
    rows = []
    for c in found.itertuples():
        if c.arm not in s.index:
            continue
        ours = s.loc[c.arm]
        for (metric, mode), value in sorted(c.numbers.items()):
            compared = mode or "std"
            col = f"{metric}_{compared}"
            mean, low, high = (ours.get(f"{col}_{x}", np.nan) for x in ("mean", "low", "high"))
            rows.append({
                "arm": c.arm, "label": c.label, "framework": c.framework, "source": c.source,
                "setting": c.setting, "note": c.note, T.SELECT_ON: c.select_on,
                "metric": metric, "mode": mode, "published": value, "compared_mode": compared,
                "n": int(ours["n"]), "ours_mean": mean, "ours_low": low, "ours_high": high,
                "ours_half": ours.get(f"{col}_half", np.nan),
                "inside": _inside(value, low, high),
            })
    frame = pd.DataFrame(rows, columns=[
        "arm", "label", "framework", "source", "setting", "note", T.SELECT_ON, "metric", "mode",
        "published", "compared_mode", "n", "ours_mean", "ours_low", "ours_high", "ours_half",
        "inside"])
    theirs = {c.arm: preferred(c.numbers, rank_metric, "std") for c in found.itertuples()}
    ranked = [a for a in dict.fromkeys(frame["arm"]) if np.isfinite(theirs.get(a, np.nan))]
    ascending = not HIGHER_IS_BETTER.get(rank_metric, True)
    col = f"{rank_metric}_std_mean"
    r = pd.DataFrame({"theirs": [theirs[a] for a in ranked],
                      "ours": [s.loc[a, col] if col in s else np.nan for a in ranked]},
                     index=ranked)
    part3_rank = r["theirs"].rank(method="min", ascending=ascending).to_dict()
    our_rank = r["ours"].rank(method="min", ascending=ascending).to_dict()
    frame["part3_rank"] = [part3_rank.get(a, np.nan) for a in frame["arm"]]
    frame["our_rank"] = [our_rank.get(a, np.nan) for a in frame["arm"]]
    frame["rank_metric"] = rank_metric
    return frame


def kendall_tau(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b between two rankings (ties allowed): +1 the same order, -1 reversed.
    Written out (a few arms) rather than importing scipy.stats for it."""
    nc = nd = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                tx += 1
            elif dy == 0:
                ty += 1
            elif dx == dy:
                nc += 1
            else:
                nd += 1
    denominator = np.sqrt((nc + nd + tx) * (nc + nd + ty))
    return float((nc - nd) / denominator) if denominator else np.nan


def _inside(value: float, low: float, high: float) -> str:
    if not (fmt.finite(low) and fmt.finite(high)):
        return ""
    if value < low:
        return "below"
    return "above" if value > high else "inside"


def text(frame: pd.DataFrame, summary: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The table of one source as the reader sees it, one row per arm and metric; returns the
    footnotes {note: letter} (the stated differences, shared by most arms, are shown once)."""
    notes: dict[str, str] = {}
    rows = []
    frame = _with_both_modes(frame, summary)
    for (_, metric), g in frame.groupby(["arm", "metric"], sort=False):
        r = g.iloc[0]
        if r.note:
            notes.setdefault(r.note, NOTES[len(notes) % len(NOTES)])
        theirs = "; ".join(f"{fmt.num(metric, x.published)} ({x.mode or 'mode not stated'})"
                           for x in g.itertuples())
        inside = "; ".join(
            f"{x.mode or 'not stated'} vs our {x.compared_mode}: "
            + {"inside": "yes", "above": "no (above)", "below": "no (below)"}.get(x.inside,
                                                                                 fmt.DASH)
            for x in g.itertuples())
        ranked = metric == r.rank_metric
        rows.append({
            "arm": r.label, "framework": r.framework, "published setting": r.setting,
            "metric": fmt.metric_name(metric), "published (test, one run)": theirs,
            "seeds": r.n,  # its own column: arms of one table may have different counts
            **{f"ours {m}": _ours(r, metric, m) for m in MODES},
            "inside our 95% CI": inside,
            "rank: theirs / ours": f"{_rank(r.part3_rank)} / {_rank(r.our_rank)}" if ranked
            else fmt.DASH,
            "our epoch selected on": f"validation {fmt.metric_name(r.select_on)}",
            "stated differences": f"[{notes[r.note]}]" if r.note else fmt.DASH,
        })
    return pd.DataFrame(rows), notes


def _ours(r, metric: str, mode: str) -> str:
    return fmt.pm(metric, r[f"{mode}_mean"], r[f"{mode}_half"])


def _rank(x: float) -> str:
    return str(int(x)) if fmt.finite(x) else fmt.DASH


def _with_both_modes(frame: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """Add our mean and half-width in both modes (std_mean, mc_half, ...) for the text table."""
    s = summary.set_index("arm")
    out = frame.copy()
    for mode in MODES:
        for x in ("mean", "half"):
            out[f"{mode}_{x}"] = [s.loc[a].get(f"{m}_{mode}_{x}", np.nan)
                                  for a, m in zip(out["arm"], out["metric"], strict=True)]
    return out


def verdicts(found: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """Per primary comparison whose two arms carry the source's number: the source's difference
    (one run each) against ours, and the word for it: right (ours significant, same direction),
    wrong (significant, opposite direction), or within noise (ours not significant)."""
    by_arm = {c.arm: c for c in found.itertuples()}
    out = []
    for r in comparisons[comparisons["family"] == "primary"].itertuples():
        a, b = by_arm.get(r.a_arm), by_arm.get(r.b_arm)
        if a is None or b is None:
            continue
        theirs = preferred(a.numbers, r.metric, r.mode) - preferred(b.numbers, r.metric, r.mode)
        if fmt.finite(theirs):
            out.append(verdict_sentence(r, theirs))
    return out


def verdict_word(r, theirs: float) -> str:
    """right / wrong / within noise for the source's difference `theirs` (A - B)."""
    p = p_used(r)
    if not fmt.finite(p) or r.n < 2:
        return "not testable"
    if p >= ALPHA:
        return "within noise"
    return "right" if np.sign(theirs) == np.sign(r.diff) else "wrong"


def verdict_sentence(r, theirs: float) -> str:
    m = r.metric
    word = verdict_word(r, theirs)
    p_text = f"Holm p {fmt.pvalue(r.p_holm)}" if corrected(r) else f"p {fmt.pvalue(r.p)}"
    ours = (f"ours {fmt.with_unit(m, r.diff, True)}, 95% CI {fmt.interval(m, r.low, r.high)}, "
            f"{p_text}, n={r.n}")
    where = ""
    if fmt.finite(r.low) and fmt.finite(r.high):
        outside = theirs < r.low or theirs > r.high
        where = f"; the published difference lies {'outside' if outside else 'inside'} our CI"
    detail = {
        "right": "the direction holds beyond seed noise",
        "wrong": "the direction is reversed beyond seed noise",
        "within noise": (f"not resolved by {r.n} seeds (the design detects "
                         f"{fmt.diff_size(m, r.mde)} with 80% power)" if fmt.finite(r.mde)
                         else "not resolved by these seeds"),
        "not testable": "not testable here",
    }[word]
    return (f"**{r.declared}**: published {fmt.with_unit(m, theirs, True)} (one run each); "
            f"{ours}: **{word}** — {detail}{where}.")
