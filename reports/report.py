"""Assemble the report's sections from the loaded store: tables, figures and sentences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reports import arms as A
from reports import compare, figures, fmt, provenance, published, tables
from reports.health import Health
from reports.load import MODES, StoreData, task_metrics
from reports.render import Bullets, Document, Heading, Image, Para, Table

TASK_ORDER = ["ptb", "imdb", "rt"]
TASK_NAMES = {"ptb": "Penn Treebank (word-level language model)",
              "imdb": "IMDB (sentiment classification)",
              "rt": "Rotten Tomatoes (sentence polarity)"}


@dataclass
class Built:
    doc: Document
    per_run: pd.DataFrame
    summaries: dict[str, pd.DataFrame]
    comparisons: dict[str, pd.DataFrame]
    mc: dict[str, pd.DataFrame]
    cost: dict[str, pd.DataFrame]


@dataclass
class Context:
    """What every section needs: the usable runs with their arms, per-run values, histories."""

    runs: pd.DataFrame
    per: pd.DataFrame
    wide: pd.DataFrame
    tasks: list[str]
    order: list[str]
    fig_dir: Path
    pool: object = None  # a figures.pool() executor

    def figure(self, kind: str, name: str, title: str, *args):
        """Submit a figure; the section holds the future and resolves it when rendering."""
        return self.pool.submit(figures.render, kind, self.fig_dir, name, title, *args)

    def task_runs(self, task: str) -> pd.DataFrame:
        return self.runs[self.runs["task"] == task]

    def task_wide(self, task: str) -> pd.DataFrame:
        return self.wide[self.wide["run_id"].isin(self.task_runs(task)["run_id"])]

    def metric(self, task: str) -> str:
        """The task's selection metric (perplexity, accuracy)."""
        return task_metrics(task, self.task_runs(task)["metrics"].iloc[0])[0]


def build(data: StoreData, health: Health, out: Path, filters: str = "",
          compare_mode: str = "std", title: str = "Recurrent dropout: comparison report",
          family: str = "task") -> Built:
    """The whole report as a Document, plus the numeric tables behind it (for tests)."""
    runs = A.assign(health.usable) if len(health.usable) else health.usable.assign(
        arm=[], label=[], qualifier=[], setting=[])
    per = tables.per_run(runs, data.history) if len(runs) else pd.DataFrame(
        columns=["task", "arm", "label", "framework", "seed"])
    tasks = sorted(runs["task"].unique(), key=lambda t: (
        TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t))
    doc = Document(title)
    built = Built(doc, per, {}, {}, {}, {})
    with figures.pool() as pool:
        ctx = Context(runs, per, tables.wide_history(data.history), tasks, A.variant_order(),
                      out / "figures", pool)
        # figures first: workers draw them while this process computes the tables
        curves, mc_figs = _curves_section(ctx), _mc_figures(ctx)
        doc.add(*_intro(data, health, runs, filters, compare_mode))
        doc.add(Heading("1. Summary"), *_summary_section(ctx, health, built))
        doc.add(Heading("2. Learning curves"), *curves)
        doc.add(Heading("3. MC dropout minus standard evaluation"),
                *_mc_section(ctx, built, mc_figs))
        doc.add(Heading("4. Paired comparisons"),
                *_comparison_section(ctx, built, compare_mode, family))
        doc.add(Heading("5. Cost"), *_cost_section(ctx, built))
        doc.add(Heading("6. Published numbers"), *_published_section(ctx, built))
        doc.add(Heading("7. Run health"), *_health_blocks(data, health))
        items = provenance.rows(data.runs, health.usable, health.flagged, data.parents,
                                data.uri, filters, provenance.git_commit_or_unknown())
        doc.add(Heading("8. Provenance"),
                Table(pd.DataFrame(items, columns=["item", "value"]), kind="wide"))
        doc.blocks = [Image(b.figure.result()) if isinstance(b, Image) and
                      hasattr(b.figure, "result") else b for b in doc.blocks]
    return built


def _summary_section(ctx: Context, health: Health, built: Built) -> list:
    if not ctx.tasks:
        return [Para("**No usable runs**: every selected run is listed under "
                     "[Run health](#7-run-health) with the reason.")]
    blocks = []
    for task in ctx.tasks:
        built.summaries[task] = s = tables.summary(ctx.per, task, ctx.order)
        blocks += [Heading(f"{task}: {TASK_NAMES.get(task, task)}", 3),
                   Table(_summary_text(s, task, health.flagged),
                         _summary_caption(task, ctx.runs), "summary")]
    return blocks


def _curves_section(ctx: Context) -> list:
    blocks = []
    for task in ctx.tasks:
        mine, metric = ctx.task_runs(task), ctx.metric(task)
        blocks += [Heading(task, 3), Image(ctx.figure(
            "curves", f"curves_{task}", f"{task}: training loss and validation "
            f"{fmt.metric_name(metric)} (MC) per epoch; line = mean over seeds, band = lowest "
            "to highest seed", ctx.task_wide(task), _plot_runs(mine), _labels(mine, ctx.order),
            metric, sorted(mine["framework"].unique())))]
    return blocks


def _mc_figures(ctx: Context) -> dict:
    out = {}
    for task in ctx.tasks:
        mine, metric = ctx.task_runs(task), ctx.metric(task)
        out[task] = ctx.figure(
            "mc", f"mc_minus_std_{task}", f"{task}: MC minus standard validation "
            f"{fmt.metric_name(metric)}, every epoch of every seed", ctx.task_wide(task),
            _plot_runs(mine),
            _labels(mine, ctx.order), metric, sorted(mine["framework"].unique()))
    return out


def _mc_section(ctx: Context, built: Built, figs: dict) -> list:
    blocks: list = [Para(
        "Per-epoch validation differences (Part 3's histogram) and, per arm, the mean "
        "difference with a 95% t interval over seeds: on the test set at the best epoch, and "
        "averaged over all validation epochs of a run.")]
    for task in ctx.tasks:
        built.mc[task] = m = tables.mc_minus_std(ctx.per, task, ctx.order)
        blocks += [Heading(task, 3), Image(figs[task]),
                   Table(_mc_text(m), "MC − standard (positive = MC higher)")]
    return blocks


def _plot_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Only the columns a figure needs: less to send to a worker process."""
    return runs[["run_id", "label", "framework"]]


def _comparison_section(ctx: Context, built: Built, mode: str, family: str) -> list:
    blocks: list = [Para(
        f"Test {('MC' if mode == 'mc' else 'standard-evaluation')} metric at the "
        "best-validation epoch; runs paired by seed; difference = A − B with a 95% t interval; "
        "d_z = mean difference / SD of the differences; paired t-test, Holm-corrected over all "
        f"comparisons of the {family} (α = 0.05; the intervals are not adjusted). \"No "
        "detectable difference\" means the corrected test does not reject at this number of "
        "seeds, not that the variants are equal: the interval shows which differences remain "
        "plausible.")]
    for task in ctx.tasks:
        mine = ctx.task_runs(task)
        arm_list = sorted(
            (compare.Arm(r.arm, r.label, r.task, r.framework, r.variant, r.setting)
             for r in mine.drop_duplicates("arm").itertuples()),
            key=lambda a: (*A.order_key(a.label, ctx.order), a.framework))
        built.comparisons[task] = c = compare.compare(
            ctx.per[ctx.per["task"] == task], arm_list, ctx.metric(task), mode, family)
        blocks += [Heading(task, 3), *_comparison_blocks(c)]
    return blocks


def _cost_section(ctx: Context, built: Built) -> list:
    blocks: list = [Para(
        "Training throughput and time per epoch (per run: median over epochs, the first left "
        "out when a run has more, as it includes warm-up and graph tracing), relative to "
        "variant `none` of the same framework (the fused baseline). Evaluation time includes "
        "the MC passes. Only comparable between runs on the same machine (see Provenance).")]
    for task in ctx.tasks:
        built.cost[task] = c = tables.cost(ctx.per, ctx.runs, task, ctx.order)
        blocks += [Heading(task, 3), Table(_cost_text(c))]
        if c["train_tokens_per_s_rel"].notna().any():
            blocks.append(Image(ctx.figure("cost", f"cost_{task}",
                                           f"{task}: training tokens/s relative to none", c)))
    return blocks


def _published_section(ctx: Context, built: Built) -> list:
    blocks: list = [Para(
        "Published results beside ours. **same setting** only where our arm has every "
        "parameter the paper fixes; otherwise the row is labelled **different setting** with "
        "what differs, and the numbers are context, not a replication.")]
    settings = ctx.runs.drop_duplicates("arm").set_index("arm")["setting"].to_dict()
    for task in ctx.tasks:
        frame, notes = published.table(task, built.summaries[task], settings)
        if len(frame):
            blocks += [Heading(task, 3), Table(frame, kind="wide")]
            if notes:
                blocks.append(Bullets([f"[{k}] {v}" for v, k in notes.items()]))
    others = sorted({p.task for p in published.PUBLISHED} - set(ctx.tasks))
    if others:
        blocks.append(Para(f"Published numbers for {', '.join(others)} are omitted: no runs "
                           "of that task are in this report."))
    return blocks


def _labels(runs: pd.DataFrame, order: list[str]) -> list[str]:
    return sorted(runs["label"].unique(), key=lambda lab: A.order_key(lab, order))


def _intro(data: StoreData, health: Health, runs: pd.DataFrame, filters: str, mode: str) -> list:
    blocks = [Para(f"Generated from the MLflow store `{provenance.redact(data.uri)}` alone "
                   f"({len(data.runs)} training runs{'; filters: ' + filters if filters else ''}"
                   "). Regenerate with `make report` (options: `python -m reports.build "
                   "--help`).")]
    if len(health.flagged):
        counts = health.flagged["category"].value_counts()
        text = ", ".join(f"{n} {c}" for c, n in counts.items())
        blocks.append(Para(f"**Run health: {len(health.flagged)} run(s) are not in the tables "
                           f"({text})** — see [Run health](#7-run-health)."))
    bad = health.sweeps[health.sweeps["verdict"] != "complete"]
    if len(bad):
        blocks.append(Para(f"**{len(bad)} sweep(s) incomplete** — see "
                           "[Run health](#7-run-health)."))
    mc = sorted({p.get("train.mc_samples") for p in runs["params"]} - {None}, key=str)
    active = sorted(set(runs.loc[[p.get("dropout.eval_active") == "True"
                                  for p in runs["params"]], "label"]))
    blocks.append(Bullets([
        "Numbers are means over seeds ± the half-width of the 95% Student-t interval "
        "(no interval with one seed).",
        "Test metrics are measured once, at the epoch with the best standard validation "
        "selection metric (perplexity for ptb, accuracy for imdb/rt).",
        f"std = deterministic evaluation; MC = average of {', '.join(mc) or '?'} stochastic "
        f"passes (train.mc_samples). Paired comparisons use the {mode} metric.",
        "A variant label carries in brackets the settings that distinguish it from other runs "
        "of the same task (e.g. mask granularity); runs are averaged only within one label.",
        *([f"Standard evaluation is stochastic for {', '.join(active)}: dropout.eval_active="
           "true keeps awd-lstm's row mask on at evaluation, as Part 3's runs did."]
          if active else []),
    ]))
    return blocks


def _summary_caption(task: str, runs: pd.DataFrame) -> str:
    mine = runs[runs["task"] == task]
    epochs = sorted({p.get("train.epochs") for p in mine["params"]} - {None}, key=str)
    return (f"Test metrics at the best-validation epoch, mean ± 95% CI over seeds; epochs per "
            f"run: {', '.join(epochs)}; best value of each column in bold.")


def _bold_best(frame: pd.DataFrame, col: str, metric: str) -> set[int]:
    from reports.load import HIGHER_IS_BETTER

    values = frame[f"{col}_mean"]
    if values.notna().sum() < 2 or values.nunique() < 2:
        return set()
    best = values.max() if HIGHER_IS_BETTER.get(metric, True) else values.min()
    return set(frame.index[values == best])


def _summary_text(s: pd.DataFrame, task: str, flagged: pd.DataFrame) -> pd.DataFrame:
    present = _summary_metrics(s)
    metrics = [m for m in task_metrics(task, [f"test_{m}_std" for m in present])
               if m in present]
    out = pd.DataFrame({"variant": s["label"], "framework": s["framework"],
                        "seeds": s["n"].astype(str)})
    for m in metrics:
        for mode in MODES:
            col = f"{m}_{mode}"
            best = _bold_best(s, col, m)
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


def _mc_text(m: pd.DataFrame) -> pd.DataFrame:
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


def _comparison_blocks(c: pd.DataFrame) -> list:
    if c.empty:
        return [Para("No comparable pairs of arms (comparisons need two arms that differ in one "
                     "factor only and share seeds).")]
    blocks = [Para(f"Family: {len(c)} comparisons, {int(c['p'].notna().sum())} testable.")]
    for key, text in compare.QUESTIONS.items():
        g = c[c["question"] == key]
        if len(g):
            blocks += [Para(f"**{text}**"), Bullets(list(g["sentence"]))]
    table = _comparison_table(c)
    return [*blocks, table]


def _comparison_table(c: pd.DataFrame) -> Table:
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


def _cost_text(c: pd.DataFrame) -> pd.DataFrame:
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


def _summary_metrics(summary: pd.DataFrame) -> set[str]:
    return {c.removesuffix("_std_mean") for c in summary.columns if c.endswith("_std_mean")}


def _health_blocks(data: StoreData, health: Health) -> list:
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
