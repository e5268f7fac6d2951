"""Numeric tables -> the text tables and sentences of the report (display units, bold best,
flag counts), kept apart from the section assembly in `reports.report`."""

from __future__ import annotations

import pandas as pd

from reports import compare, fmt, provenance
from reports.health import Health
from reports.load import HIGHER_IS_BETTER, MODES, StoreData, task_metrics
from reports.render import Bullets, Para, Table


def summary_caption(task: str, runs: pd.DataFrame) -> str:
    mine = runs[runs["task"] == task]
    epochs = sorted({p.get("train.epochs") for p in mine["params"]} - {None}, key=str)
    return (f"Test metrics at the best-validation epoch, mean ± 95% CI over seeds; epochs per "
            f"run: {', '.join(epochs)}; best value of each column in bold.")


def bold_best(frame: pd.DataFrame, col: str, metric: str) -> set[int]:
    values = frame[f"{col}_mean"]
    if values.notna().sum() < 2 or values.nunique() < 2:
        return set()
    best = values.max() if HIGHER_IS_BETTER.get(metric, True) else values.min()
    return set(frame.index[values == best])


def summary_text(s: pd.DataFrame, task: str, flagged: pd.DataFrame) -> pd.DataFrame:
    present = summary_metrics(s)
    metrics = [m for m in task_metrics(task, [f"test_{m}_std" for m in present])
               if m in present]
    out = pd.DataFrame({"variant": s["label"], "framework": s["framework"],
                        "seeds": s["n"].astype(str)})
    for m in metrics:
        for mode in MODES:
            col = f"{m}_{mode}"
            best = bold_best(s, col, m)
            out[f"{fmt.metric_name(m)} {mode}"] = [
                (f"**{t}**" if i in best else t) for i, t in
                ((i, fmt.pm(m, s.at[i, f"{col}_mean"], s.at[i, f"{col}_half"])) for i in s.index)]
    out["best epoch"] = [f"{r.best_epoch_mean:.1f}" + (f" ({r.best_epoch_min:.0f}–"
                                                       f"{r.best_epoch_max:.0f})"
                                                       if r.best_epoch_min != r.best_epoch_max
                                                       else "") for r in s.itertuples()]
    out["tokens/s"] = [fmt.count(x) for x in s["tokens_per_s_mean"]]
    out["epoch s"] = [fmt.seconds(x) for x in s["epoch_seconds_mean"]]
    mine = flagged[flagged["task"] == task] if len(flagged) else flagged
    out["flagged runs"] = [str(int(((mine["framework"] == r.framework)
                                & (mine["variant"] == r.label.split(" [")[0])).sum()))
                       if len(mine) else "0" for r in s.itertuples()]
    return out


def mc_text(m: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "variant": m["label"], "framework": m["framework"],
        "metric": [fmt.metric_name(x) for x in m["metric"]], "seeds": m["n"].astype(str),
        "test MC − std": [fmt.pm(r.metric, r.test_diff_mean, r.test_diff_half, True)
                          for r in m.itertuples()],
        "valid MC − std (mean over epochs)": [
            fmt.pm(r.metric, r.valid_diff_mean, r.valid_diff_half, True) for r in m.itertuples()],
        "epochs MC better / worse": [
            f"{100 * b:.0f}% / {100 * w:.0f}%" if fmt.finite(b) else fmt.DASH
            for b, w in zip(m["mc_better_share"], m["mc_worse_share"], strict=True)],
    })


def comparison_blocks(c: pd.DataFrame) -> list:
    if c.empty:
        return [Para("No comparable pairs of arms (comparisons need two arms that differ in one "
                     "factor only and share seeds).")]
    blocks = [Para(f"Family: {len(c)} comparisons, {int(c['p'].notna().sum())} testable.")]
    for key, text in compare.QUESTIONS.items():
        g = c[c["question"] == key]
        if len(g):
            blocks += [Para(f"**{text}**"), Bullets(list(g["sentence"]))]
    table = comparison_table(c)
    return [*blocks, table]


def comparison_table(c: pd.DataFrame) -> Table:
    m = c["metric"].iloc[0]
    frame = pd.DataFrame({
        "A": c["a"], "B": c["b"], "framework": c["framework"], "seeds": c["n"].astype(str),
        f"mean A ({fmt.metric_name(m)})": [fmt.num(m, x) for x in c["mean_a"]],
        "mean B": [fmt.num(m, x) for x in c["mean_b"]],
        "A − B [95% CI]": [f"{fmt.num(m, r.diff, True)} {fmt.interval(m, r.low, r.high)}"
                           for r in c.itertuples()],
        "d_z": [fmt.effect(x) for x in c["effect"]], "p": [fmt.pvalue(x) for x in c["p"]],
        "Holm p": [fmt.pvalue(x) for x in c["p_holm"]], "verdict": c["verdict"],
    })
    return Table(frame, "All comparisons of the family")


def cost_text(c: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "variant": c["label"], "framework": c["framework"], "seeds": c["n"].astype(str),
        "train tokens/s": [fmt.count_pm(r.train_tokens_per_s_mean, r.train_tokens_per_s_half)
                           for r in c.itertuples()],
        "vs none": [fmt.ratio(x) for x in c["train_tokens_per_s_rel"]],
        "epoch s": [fmt.seconds(r.epoch_seconds_mean, r.epoch_seconds_half)
                    for r in c.itertuples()],
        "vs none ": [fmt.ratio(x) for x in c["epoch_seconds_rel"]],
        "eval s": [fmt.seconds(r.eval_seconds_mean, r.eval_seconds_half)
                   for r in c.itertuples()],
        "vs none  ": [fmt.ratio(x) for x in c["eval_seconds_rel"]],
    })


def summary_metrics(summary: pd.DataFrame) -> set[str]:
    return {c.removesuffix("_std_mean") for c in summary.columns if c.endswith("_std_mean")}


def health_blocks(data: StoreData, health: Health) -> list:
    blocks = []
    f = health.flagged
    if f.empty:
        blocks.append(Para(f"All {len(data.runs)} runs finished, are tagged completed and have "
                           "every metric."))
    else:
        counts = f["category"].value_counts()
        blocks.append(Para(f"{len(health.usable)} of {len(data.runs)} runs are used; "
                           + ", ".join(f"**{n} {c}**" for c, n in counts.items())
                           + " are listed here and left out of every table and figure."))
        blocks.append(Table(pd.DataFrame({
            "run": [provenance.short_id(r) for r in f["run_id"]], "name": f["run_name"],
            "task": f["task"], "framework": f["framework"], "variant": f["variant"],
            "seed": [str(s) if not pd.isna(s) else "?" for s in f["seed"]],
            "status": f["status"], "completed": ["yes" if c else "no" for c in f["completed"]],
            "category": f["category"], "problem": [str(p)[:300] for p in f["problem"]],
        }), "Runs not used", kind="wide"))
    s = health.sweeps
    if len(s):
        shown = s.assign(parent_run=[provenance.short_id(r) for r in s["parent_run"]])
        shown = shown.fillna("–").astype(str).rename(columns={
            "sweep_id": "sweep id", "parent_run": "parent run", "runs_here": "runs in store",
            "runs_completed": "runs completed", "finished": "jobs finished",
            "skipped": "jobs skipped", "failed": "jobs failed"})
        blocks.append(Table(shown, "Sweeps (parent runs; job counts from the sweep's closing "
                            "summary)", kind="wide"))
    else:
        blocks.append(Para("No sweep parent runs among the selected runs."))
    return blocks
