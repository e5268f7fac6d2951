"""Section "Cost": per task each arm's throughput, epoch and evaluation time, wall and CPU,
relative to variant none of the same framework, and the chart of training throughput."""

from __future__ import annotations

import pandas as pd

from experiments.metrics import EPOCH_CPU_SECONDS, EPOCH_SECONDS, EVAL_SECONDS, TRAIN_TOKENS_PER_S
from reports import fmt, markdown
from reports.analysis import tables
from reports.sections import titles
from reports.sections.context import Context, Part, Section


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """What the times mean and when to trust them, then per task the table and the chart."""
    blocks: list[Part] = [
        "Training throughput and time per epoch (per run: median over epochs, the first left "
        "out when a run has more, as it includes warm-up and graph tracing), relative to "
        "variant `none` of the same framework (the fused baseline). Evaluation time includes "
        "the MC passes. Only comparable between runs on the same machine (see Provenance), "
        "and only as far as the load on it stayed the same: a sweep's jobs share the machine "
        "with each other and with whatever else runs, so an interval wider than a few percent "
        "of its mean says the load varied. `make bench` measures costs side by side."]
    for task in ctx.tasks:
        ctx.numbers.cost[task] = c = tables.cost(ctx.per, ctx.runs, task, ctx.order)
        blocks += [markdown.heading(task, 3), markdown.table(text(c))]
        if c[f"{TRAIN_TOKENS_PER_S}_rel"].notna().any():
            blocks.append(ctx.figure("cost", f"cost_{task}",
                                     f"{task}: training tokens/s relative to none", c))
    return blocks


def text(c: pd.DataFrame) -> pd.DataFrame:
    """The cost table as text, each ratio beside its time."""
    return pd.DataFrame({
        "variant": c["label"], "framework": c["framework"], "seeds": c["n"].astype(str),
        "train tokens/s": [fmt.count_pm(r.train_tokens_per_s_mean, r.train_tokens_per_s_half)
                           for r in c.itertuples()],
        "vs none": [fmt.ratio(x) for x in c[f"{TRAIN_TOKENS_PER_S}_rel"]],
        "epoch s": [fmt.seconds(r.epoch_seconds_mean, r.epoch_seconds_half)
                    for r in c.itertuples()],
        "vs none ": [fmt.ratio(x) for x in c[f"{EPOCH_SECONDS}_rel"]],
        "eval s": [fmt.seconds(r.eval_seconds_mean, r.eval_seconds_half)
                   for r in c.itertuples()],
        "vs none  ": [fmt.ratio(x) for x in c[f"{EVAL_SECONDS}_rel"]],
        "epoch CPU s": [fmt.seconds(r.epoch_cpu_seconds_mean, r.epoch_cpu_seconds_half)
                        for r in c.itertuples()],
        "vs none (CPU)": [fmt.ratio(x) for x in c[f"{EPOCH_CPU_SECONDS}_rel"]],
        "wall vs CPU": [_agree(w, cpu) for w, cpu in zip(
            c[f"{EPOCH_SECONDS}_rel"], c[f"{EPOCH_CPU_SECONDS}_rel"], strict=True)],
    })


def _agree(wall: float, cpu: float) -> str:
    """Whether an arm's wall-time and CPU-time ratios to none tell one story: more than 10%
    apart, the machine's load changed between the runs, and the CPU ratio is the one to read."""
    if not (fmt.finite(wall) and fmt.finite(cpu)):
        return fmt.DASH
    return "agree" if abs(wall / cpu - 1) <= 0.10 else "differ: load varied, read CPU"


SECTION = Section(titles.COST, write)
