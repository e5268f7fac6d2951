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
from reports import fmt
from reports.analysis import published
from reports.metrics import HIGHER_IS_BETTER, task_metrics
from reports.stats import prediction_bounds


def _common(values) -> str:
    """The most frequent non-empty value ('' when none)."""
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


def preferred_key(numbers_: dict[tuple[str, str], float], metric: str,
                  mode: str) -> tuple[str, str] | None:
    """Which of the source's numbers for `metric` to set against our `mode`: the same mode, else
    the one whose mode was not stated, else the other mode; None when it gave none."""
    other = "mc" if mode == "std" else "std"
    return next((key for key in ((metric, mode), (metric, ""), (metric, other))
                 if key in numbers_), None)


def preferred(numbers_: dict[tuple[str, str], float], metric: str, mode: str) -> float:
    """The source's number for `metric` to set against our `mode` (`preferred_key`); NaN when
    it gave none."""
    key = preferred_key(numbers_, metric, mode)
    return np.nan if key is None else numbers_[key]


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


def position(value: float, low: float, high: float) -> str:
    """Where one published run lies against the prediction interval of one run of ours:
    consistent (inside it), above, below; '' without an interval."""
    if not (fmt.finite(low) and fmt.finite(high)):
        return ""
    if value < low:
        return "below"
    return "above" if value > high else "consistent"


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
