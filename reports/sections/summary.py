"""Section "Summary": per task the forest plot (the answer in one figure) and the summary table,
then how to read the numbers."""

from __future__ import annotations

from concurrent.futures import Future

from reports import fmt, markdown
from reports.analysis import part3
from reports.analysis.forest import forest_data
from reports.sections import summary_table, titles
from reports.sections.context import Context, Part, Section

TASK_NAMES = {"ptb": "Penn Treebank (word-level language model)",
              "imdb": "IMDB (sentiment classification)",
              "rt": "Rotten Tomatoes (sentence polarity)"}


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """Per task the forest plot and the summary table, then the reading notes."""
    if not ctx.tasks:
        return [f"**No usable runs**: every selected run is listed under "
                f"{ctx.link(titles.HEALTH)} with the reason.", _notes(ctx)]
    blocks: list[Part] = []
    for task in ctx.tasks:
        blocks += [markdown.heading(f"{task}: {TASK_NAMES.get(task, task)}", 3),
                   _forest(ctx, task),
                   markdown.table(summary_table.text(ctx.summary(task), task, ctx.health.flagged),
                                  summary_table.caption(task, ctx.runs))]
    return [*blocks, _notes(ctx)]


def _forest(ctx: Context, task: str) -> Future:
    """Submit the task's forest plot (its data kept for the tests)."""
    metric, mode = ctx.metric(task), ctx.mode
    claims = part3.claims(ctx.task_runs(task))
    arms, diffs = forest_data(ctx.summary(task), claims, ctx.comparisons(task), metric, mode)
    ctx.numbers.forest[task] = arms, diffs
    marks = ("; × = published single run, over the grey 95% prediction interval of one run of "
             "ours it is judged by") if arms["published"].notna().any() else ""
    below = (f" and, below, the paired difference A − B of each primary comparison "
             f"({mode}; filled = survives Holm)" if len(diffs) else
             " (no testable primary comparison)")
    return ctx.figure(
        "forest", f"forest_{task}", f"{task}: test {fmt.metric_name(metric)} per arm "
        f"(mean, 95% CI over seeds, standard and MC{marks}){below}", arms, diffs, metric, mode)


def _notes(ctx: Context) -> str:
    """How to read the numbers: after the answer, before the details."""
    runs = ctx.runs
    mc = sorted({p.get("train.mc_samples") for p in runs["params"]} - {None}, key=str)
    active = sorted(set(runs.loc[[p.get("dropout.eval_active") == "True"
                                  for p in runs["params"]], "label"]))
    selected = "; ".join(
        f"{t}: validation "
        f"{', '.join(summary_table.selection_metrics(runs[runs['task'] == t]))}"
        for t in ctx.tasks)
    return markdown.bullets([
        "Numbers are means over seeds ± the half-width of the 95% Student-t interval "
        "(no interval with one seed).",
        "Test metrics are measured once, at the epoch with the best standard-evaluation "
        f"validation metric named by each run's tag `select_on` ({selected or 'none'}); the "
        "test set never picks an epoch.",
        f"std = deterministic evaluation; MC = average of {', '.join(mc) or '?'} stochastic "
        f"passes (train.mc_samples). Paired comparisons use the {ctx.mode} metric.",
        "A variant label carries in brackets the preset it was run from and the settings that "
        "distinguish it from other runs of the same task (e.g. mask granularity); runs are "
        "averaged only within one label.",
        *([f"Standard evaluation is stochastic for {', '.join(active)}: dropout.eval_active="
           "true keeps awd-lstm's row mask on at evaluation, as Part 3's runs did."]
          if active else []),
    ])


SECTION = Section(titles.SUMMARY, write)
