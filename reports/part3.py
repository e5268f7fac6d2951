"""Part 3 beside us: the single numbers a preset reproduces, against our seeds.

A preset that reproduces a published experiment (conf/preset/part3_imdb_*.yaml) has an entry of
the same name with `match: preset` in conf/published.yaml, the one copy of its numbers: source,
setting, stated differences (`caveat`) and test numbers per metric and mode (std or mc, or
unstated: then compared with our standard evaluation). Runs name their preset in the tag
`preset`; this module looks the entry up by it.

A published number is one run. The question it can answer is whether one run of ours could have
produced it: each number is set against the 95% prediction interval of one new run of ours
(consistent with one run of ours, above, below), never against the confidence interval of our
mean. A published difference (one run of each arm) is set against the prediction interval of
one paired difference of ours. A source's conclusion is what its text states (`conclusions` in
the data file), never the sign of two single runs: without one, the row says "no stated
conclusion". Rankings are made within one framework (the two frameworks' arms ran different
settings). Runs logged before the data file also carry the numbers as `published.*` params;
those are not read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pandas as pd

from experiments import tracking as T
from experiments.metrics import MODES
from reports import fmt, published
from reports.load import HIGHER_IS_BETTER, task_metrics
from reports.stats import prediction_bounds

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
            "note": entry.caveat, "entry": entry.id, "conclusions": entry.conclusions,
            "selection": entry.selection,
            T.SELECT_ON: _common(t.get(T.SELECT_ON, "") for t in g["tags"])
            or (first[0] if first else ""),
            "numbers": dict(entry.test),
        })
    return pd.DataFrame(rows, columns=["arm", "label", "framework", "task", "source", "setting",
                                       "note", "entry", "conclusions", "selection", T.SELECT_ON,
                                       "numbers"])


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
    did not say), the 95% prediction interval of one new run of ours and where the published
    number lies against it (`position`: consistent, above, below), and both rankings of the arms
    by `rank_metric` within each framework (the source's std-or-unstated number; ours: standard
    evaluation)."""
    s = summary.set_index("arm")
    rows = []
    for c in found.itertuples():
        if c.arm not in s.index:
            continue
        ours = s.loc[c.arm]
        for (metric, mode), value in sorted(c.numbers.items()):
            compared = mode or "std"
            col = f"{metric}_{compared}"
            mean, low, high, pi_low, pi_high = (
                ours.get(f"{col}_{x}", np.nan) for x in ("mean", "low", "high", "pi_low",
                                                          "pi_high"))
            rows.append({
                "arm": c.arm, "label": c.label, "framework": c.framework, "source": c.source,
                "setting": c.setting, "note": c.note, "selection": c.selection,
                T.SELECT_ON: c.select_on, "metric": metric, "mode": mode, "published": value,
                "compared_mode": compared, "n": int(ours["n"]), "ours_mean": mean,
                "ours_low": low, "ours_high": high, "ours_pi_low": pi_low,
                "ours_pi_high": pi_high, "ours_half": ours.get(f"{col}_half", np.nan),
                "position": position(value, pi_low, pi_high),
            })
    frame = pd.DataFrame(rows, columns=[
        "arm", "label", "framework", "source", "setting", "note", "selection", T.SELECT_ON,
        "metric", "mode", "published", "compared_mode", "n", "ours_mean", "ours_low",
        "ours_high", "ours_pi_low", "ours_pi_high", "ours_half", "position"])
    theirs = {c.arm: preferred(c.numbers, rank_metric, "std") for c in found.itertuples()}
    ranked = [a for a in dict.fromkeys(frame["arm"]) if np.isfinite(theirs.get(a, np.nan))]
    ascending = not HIGHER_IS_BETTER.get(rank_metric, True)
    col = f"{rank_metric}_std_mean"
    r = pd.DataFrame({"theirs": [theirs[a] for a in ranked],
                      "ours": [s.loc[a, col] if col in s else np.nan for a in ranked],
                      "framework": [s.loc[a, "framework"] for a in ranked]}, index=ranked)
    by = r.groupby("framework")
    part3_rank = by["theirs"].rank(method="min", ascending=ascending).to_dict()
    our_rank = by["ours"].rank(method="min", ascending=ascending).to_dict()
    frame["part3_rank"] = [part3_rank.get(a, np.nan) for a in frame["arm"]]
    frame["our_rank"] = [our_rank.get(a, np.nan) for a in frame["arm"]]
    frame["rank_metric"] = rank_metric
    return frame


POSITION_WORDS = {"consistent": "consistent with one run of ours", "above": "above",
                  "below": "below"}


def position(value: float, low: float, high: float) -> str:
    """Where one published run lies against the prediction interval of one run of ours:
    consistent (inside it), above, below; '' without an interval."""
    if not (fmt.finite(low) and fmt.finite(high)):
        return ""
    if value < low:
        return "below"
    return "above" if value > high else "consistent"


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
        against = "; ".join(
            f"{x.mode or 'not stated'} vs our {x.compared_mode} "
            f"{fmt.interval(metric, x.ours_pi_low, x.ours_pi_high)}: "
            + POSITION_WORDS.get(x.position, fmt.DASH) for x in g.itertuples())
        ranked = metric == r.rank_metric
        rows.append({
            "arm": r.label, "framework": r.framework, "published setting": r.setting,
            "metric": fmt.metric_name(metric), "published (test, one run)": theirs,
            "seeds": r.n,  # its own column: arms of one table may have different counts
            **{f"ours {m}": _ours(r, metric, m) for m in MODES},
            "their run against one run of ours (95% prediction interval)": against,
            "rank within framework: theirs / ours": f"{_rank(r.part3_rank)} / "
            f"{_rank(r.our_rank)}" if ranked else fmt.DASH,
            "their epoch / ours selected on": f"{r.selection or 'not stated'} / validation "
            f"{fmt.metric_name(r.select_on)}",
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
    """Per primary comparison whose two arms carry the source's number: what the source states
    about the pair (its `conclusions`, never the sign of its two runs) against our verdict, and
    its one-run difference against the prediction interval of one paired difference of ours."""
    by_arm = {c.arm: c for c in found.itertuples()}
    out = []
    for r in comparisons[comparisons["family"] == "primary"].itertuples():
        a, b = by_arm.get(r.a_arm), by_arm.get(r.b_arm)
        if a is None or b is None:
            continue
        theirs = preferred(a.numbers, r.metric, r.mode) - preferred(b.numbers, r.metric, r.mode)
        if fmt.finite(theirs):
            out.append(verdict_sentence(r, theirs, stated(a, b)))
    return out


def stated(a, b) -> published.Conclusion | None:
    """The source's stated conclusion about A vs B, seen from A (`direction`: A better, worse
    or the same as B); None when its text states none."""
    flipped = {"better": "worse", "worse": "better"}
    for mine, other, flip in ((a, b, False), (b, a, True)):
        for c in mine.conclusions:
            if c.vs == other.entry:
                return replace(c, vs=b.entry, direction=flipped.get(c.direction, c.direction)
                               if flip else c.direction)
    return None


def difference_position(r, theirs: float) -> tuple[str, float, float]:
    """Where the published one-run difference lies against the 95% prediction interval of one
    paired difference of ours (mean ± t · s_d · sqrt(1 + 1/n))."""
    low, high = prediction_bounds(r.diff, r.sd, r.n)
    return position(theirs, low, high), low, high


def verdict_sentence(r, theirs: float,
                     stated_: published.Conclusion | None = None) -> str:
    m = r.metric
    where, low, high = difference_position(r, theirs)
    against = (f"against one paired difference of ours, 95% prediction interval "
               f"{fmt.interval(m, low, high)} (n={r.n}): "
               f"**{POSITION_WORDS.get(where, 'no interval')}**")
    ours = f"our verdict: {r.verdict}"
    if not stated_:
        return (f"**{r.declared}**: no stated conclusion; published difference "
                f"{fmt.with_unit(m, theirs, True)} (one run each) {against}; {ours}.")
    return (f"**{r.declared}**: the source states \"{stated_.says}\" ({stated_.where}; A "
            f"{stated_.direction} than B); "
            f"{ours}; published difference {fmt.with_unit(m, theirs, True)} {against}.")
