"""Section "Other published numbers": every published result that no preset reproduces, set
beside our closest arm, labelled "same setting" only where that arm has every parameter the
paper fixes, otherwise "different setting" with what differs."""

from __future__ import annotations

import pandas as pd

from reports import fmt, markdown
from reports.analysis import published
from reports.analysis.published import for_task, mismatches
from reports.sections import titles
from reports.sections.context import Context, Part, Section


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """Per task the published rows beside our closest arm, then the omitted tasks."""
    blocks: list[Part] = [
        "Published results beside ours. **same setting** only where our arm has every "
        "parameter the paper fixes; otherwise the row is labelled **different setting** with "
        "what differs, and the numbers are context, not a replication."]
    settings = ctx.runs.drop_duplicates("arm").set_index("arm")["setting"].to_dict()
    for task in ctx.tasks:
        frame, notes = table(task, ctx.summary(task), settings)
        if len(frame):
            blocks += [markdown.heading(task, 3), markdown.table(frame, text=True)]
            if notes:
                blocks.append(markdown.bullets([f"[{k}] {v}" for v, k in notes.items()]))
    others = sorted({p.task for p in published.rows()} - set(ctx.tasks))
    if others:
        blocks.append(f"Published numbers for {', '.join(others)} are omitted: no runs of that "
                      "task are in this report.")
    return blocks


def table(task: str, summary: pd.DataFrame, settings: dict[str, dict[str, str]]
          ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Published rows of `task` beside our closest arm (same variant and framework, fewest
    mismatching parameters); returns the text table and the footnotes {caveat: letter}."""
    notes: dict[str, str] = {}
    shown = []
    present = {c.removesuffix("_std_mean") for c in summary.columns if c.endswith("_std_mean")}
    for p in for_task(task):
        mode = p.mode or "std"
        reasons = []
        if p.caveat:
            notes.setdefault(p.caveat, "abcdefghijklmnopqrstuvwxyz"[len(notes) % 26])
            reasons.append(f"[{notes[p.caveat]}]")
        ours = "not run"
        cand = summary[summary["label"].str.split(" [", regex=False).str[0] == p.variant] \
            if len(summary) else summary
        if p.framework and len(cand):
            cand = cand[cand["framework"] == p.framework]
        if p.metric not in present:
            ours = f"n/a (no {fmt.metric_name(p.metric)} logged)"
        elif len(cand):
            # the closest arm of each framework (fewest mismatches, then most seeds)
            scored = sorted((len(mismatches(p, settings[r.arm])), -r.n, r.framework, r.Index)
                            for r in cand.itertuples())
            best = {}
            for _, _, framework, idx in scored:
                best.setdefault(framework, idx)
            col = f"{p.metric}_{mode}"
            ours = "; ".join(
                f"{fmt.pm(p.metric, r[col + '_mean'], r[col + '_half'])} [{mode}] "
                f"({r['label']}, {r['framework']}, n={r['n']})"
                for r in (cand.loc[i] for i in sorted(best.values(), key=list(cand.index).index)))
            miss = mismatches(p, settings[cand.loc[scored[0][3], "arm"]])
            reasons += miss[:6] + ([f"+{len(miss) - 6} more"] if len(miss) > 6 else [])
        else:
            reasons.append("no run of this variant")
        shown.append({
            "source": p.source, "published setting": p.setting,
            "closest variant": f"{p.variant} ({p.framework or 'either framework'})",
            "metric": f"test {fmt.metric_name(p.metric)}, {p.mode or 'mode not stated'}",
            "published": fmt.num(p.metric, p.test)
            + (f" (valid {fmt.num(p.metric, p.valid)})" if p.valid else ""),
            "ours": ours,
            "setting": "**same setting**" if not reasons
            else "different setting: " + "; ".join(reasons),
        })
    return pd.DataFrame(shown), notes


SECTION = Section(titles.PUBLISHED, write)
