"""Assemble the report's sections from the loaded store: tables, figures and sentences.

Order: the answers first (one line per primary question, then per task a forest plot and the
summary table), the primary questions
in words, the published numbers of the runs' presets (conf/published.yaml) beside ours with the
verdict on them, then the supporting sections (curves, MC minus standard, cost, other published
numbers, run health, provenance) and, last, the appendix table of every pairwise comparison."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from experiments import tracking as T
from experiments.metrics import TRAIN_TOKENS_PER_S
from reports import arms as A
from reports import figures, fmt, part3, provenance, published, sections, tables, text
from reports.health import Health
from reports.load import StoreData, task_metrics
from reports.render import Bullets, Document, Heading, Image, Para, Table, slug

TASK_ORDER = ["ptb", "imdb", "rt"]
TASK_NAMES = {"ptb": "Penn Treebank (word-level language model)",
              "imdb": "IMDB (sentiment classification)",
              "rt": "Rotten Tomatoes (sentence polarity)"}
HEALTH = "8. Run health"


@dataclass
class Built:
    """The document and the numeric tables behind it (tests compare these with the store)."""

    doc: Document
    per_run: pd.DataFrame
    summaries: dict[str, pd.DataFrame]
    comparisons: dict[str, pd.DataFrame]
    mc: dict[str, pd.DataFrame]
    cost: dict[str, pd.DataFrame]
    part3: dict[str, pd.DataFrame] = field(default_factory=dict)
    forest: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)
    figures: list = field(default_factory=list)  # every figures.Saved of the report


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
        arm=[], label=[], qualifier=[], setting=[], preset=[])
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
        forests = _numbers(ctx, data, built, compare_mode, family)
        doc.add(*_answers(ctx, built), *_alerts(health))
        doc.add(Heading("1. Summary"), *_summary_section(ctx, health, built, forests),
                *_notes(runs, tasks, compare_mode))
        doc.add(Heading("2. Primary questions"), *_primary_section(ctx, built))
        doc.add(Heading("3. Part 3 beside us"), *_part3_section(ctx, built))
        doc.add(Heading("4. Learning curves"), *curves)
        doc.add(Heading("5. MC dropout minus standard evaluation"),
                *_mc_section(ctx, built, mc_figs))
        doc.add(Heading("6. Cost"), *_cost_section(ctx, built))
        doc.add(Heading("7. Other published numbers"), *_published_section(ctx, built))
        doc.add(Heading(HEALTH), *text.health_blocks(data, health))
        items = provenance.rows(data.runs, health.usable, health.flagged, data.parents,
                                data.uri, filters, provenance.git_commit_or_unknown())
        doc.add(Heading("9. Provenance"), *_intro(data, filters),
                Table(pd.DataFrame(items, columns=["item", "value"]), kind="wide"))
        doc.add(Heading(text.APPENDIX), *sections.appendix(tasks, built.comparisons))
        doc.blocks = [Image(b.figure.result()) if isinstance(b, Image) and
                      hasattr(b.figure, "result") else b for b in doc.blocks]
    built.figures = [b.figure for b in doc.blocks if isinstance(b, Image)]
    return built


def _numbers(ctx: Context, data: StoreData, built: Built, mode: str, family: str) -> dict:
    """Summaries and comparisons of every task, and their forest plots (submitted at once: the
    first figure of the report)."""
    out = {}
    for task in ctx.tasks:
        metric = ctx.metric(task)
        built.summaries[task] = s = tables.summary(ctx.per, task, ctx.order)
        built.comparisons[task] = c = sections.comparisons(
            data, ctx.runs, ctx.per, task, metric, ctx.order, mode, family)
        claims = part3.claims(ctx.task_runs(task))
        built.forest[task] = arms, diffs = sections.forest_data(s, claims, c, metric, mode)
        marks = "; × = published single run" if arms["published"].notna().any() else ""
        below = (f" and, below, the paired difference A − B of each primary comparison "
                 f"({mode}; filled = survives Holm)" if len(diffs) else
                 " (no testable primary comparison)")
        out[task] = ctx.figure(
            "forest", f"forest_{task}", f"{task}: test {fmt.metric_name(metric)} per arm "
            f"(mean, 95% CI over seeds, standard and MC{marks}){below}", arms, diffs, metric,
            mode)
    return out


def _summary_section(ctx: Context, health: Health, built: Built, forests: dict) -> list:
    if not ctx.tasks:
        return [Para(f"**No usable runs**: every selected run is listed under "
                     f"[Run health](#{slug(HEALTH)}) with the reason.")]
    blocks = []
    for task in ctx.tasks:
        s = built.summaries[task]
        blocks += [Heading(f"{task}: {TASK_NAMES.get(task, task)}", 3), Image(forests[task]),
                   Table(text.summary_text(s, task, health.flagged),
                         text.summary_caption(task, ctx.runs), "summary")]
    return blocks


def _primary_section(ctx: Context, built: Built) -> list:
    blocks: list = []
    for task in ctx.tasks:
        blocks += [Heading(task, 3), *text.primary_blocks(built.comparisons[task])]
    return blocks or [Para("No usable runs.")]


def _part3_section(ctx: Context, built: Built) -> list:
    blocks: list = []
    for task in ctx.tasks:
        found, frame = sections.part3_blocks(task, ctx.runs, built.summaries[task],
                                             built.comparisons[task], ctx.metric(task))
        if len(frame):
            built.part3[task] = frame
        blocks += found
    return blocks or sections.no_part3(list(built.part3))


def _curves_section(ctx: Context) -> list:
    blocks = []
    for task in ctx.tasks:
        mine, metric = ctx.task_runs(task), ctx.metric(task)
        blocks += [Heading(task, 3), Image(ctx.figure(
            "curves", f"curves_{task}", f"{task}: training loss and validation "
            f"{fmt.metric_name(metric)} per epoch (MC where every epoch has it, else standard "
            "with the MC evaluations as dots); line = mean over seeds, band = lowest to highest "
            "seed", ctx.task_wide(task), _plot_runs(mine), _labels(mine, ctx.order),
            metric, sorted(mine["framework"].unique())))]
    return blocks


def _mc_figures(ctx: Context) -> dict:
    out = {}
    for task in ctx.tasks:
        mine, metric = ctx.task_runs(task), ctx.metric(task)
        out[task] = ctx.figure(
            "mc", f"mc_minus_std_{task}", f"{task}: MC minus standard validation "
            f"{fmt.metric_name(metric)}, every MC-evaluated epoch of every seed",
            ctx.task_wide(task),
            _plot_runs(mine),
            _labels(mine, ctx.order), metric, sorted(mine["framework"].unique()))
    return out


def _mc_section(ctx: Context, built: Built, figs: dict) -> list:
    blocks: list = [Para(
        "Per-epoch validation differences (Part 3's histogram) and, per arm, the mean "
        "difference with a 95% t interval over seeds: on the test set at the best epoch, and "
        "averaged over the validation epochs of a run that have an MC evaluation (every epoch, "
        "or with `train.mc_every` = 0 only the selected one).")]
    for task in ctx.tasks:
        built.mc[task] = m = tables.mc_minus_std(ctx.per, task, ctx.order)
        blocks += [Heading(task, 3), Image(figs[task]),
                   Table(text.mc_text(m), "MC − standard (positive = MC higher)")]
    return blocks


def _plot_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Only the columns a figure needs: less to send to a worker process."""
    return runs[["run_id", "label", "framework"]]


def _cost_section(ctx: Context, built: Built) -> list:
    blocks: list = [Para(
        "Training throughput and time per epoch (per run: median over epochs, the first left "
        "out when a run has more, as it includes warm-up and graph tracing), relative to "
        "variant `none` of the same framework (the fused baseline). Evaluation time includes "
        "the MC passes. Only comparable between runs on the same machine (see Provenance), "
        "and only as far as the load on it stayed the same: a sweep's jobs share the machine "
        "with each other and with whatever else runs, so an interval wider than a few percent "
        "of its mean says the load varied. `make bench` measures costs side by side.")]
    for task in ctx.tasks:
        built.cost[task] = c = tables.cost(ctx.per, ctx.runs, task, ctx.order)
        blocks += [Heading(task, 3), Table(text.cost_text(c))]
        if c[f"{TRAIN_TOKENS_PER_S}_rel"].notna().any():
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
    others = sorted({p.task for p in published.rows()} - set(ctx.tasks))
    if others:
        blocks.append(Para(f"Published numbers for {', '.join(others)} are omitted: no runs "
                           "of that task are in this report."))
    return blocks


def _labels(runs: pd.DataFrame, order: list[str]) -> list[str]:
    return sorted(runs["label"].unique(), key=lambda lab: A.order_key(lab, order))


def _answers(ctx: Context, built: Built) -> list:
    """The report opens with its answers: one line per primary question (verdict, difference,
    interval); where a sweep declared none, one line saying where the numbers are."""
    items = []
    for task in ctx.tasks:
        c = built.comparisons[task]
        for r in c[c["family"] == "primary"].itertuples():
            m = r.metric
            numbers = (f"A − B {fmt.with_unit(m, r.diff, True)}, 95% CI "
                       f"{fmt.interval(m, r.low, r.high)}, {r.n} paired seeds"
                       if fmt.finite(r.diff) else f"{r.n} paired seeds")
            items.append(f"{task}: **{r.declared}**: {r.verdict} ({numbers})")
    if not items:
        return [Para("**Answers.** No sweep in this report declared primary questions: the "
                     "summary below gives every arm's numbers, the appendix every pairwise "
                     "screen.")]
    return [Para("**Answers** (the primary questions the sweeps declared; details in section "
                 "2):"), Bullets(items)]


def _alerts(health: Health) -> list:
    """What a reader must know before trusting the tables: runs left out, incomplete sweeps."""
    blocks = []
    if len(health.flagged):
        counts = health.flagged["category"].value_counts()
        text_ = ", ".join(f"{n} {c}" for c, n in counts.items())
        blocks.append(Para(f"**Run health: {len(health.flagged)} run(s) are not in the tables "
                           f"({text_})** — see [Run health](#{slug(HEALTH)})."))
    bad = health.sweeps[health.sweeps["verdict"].str.startswith("incomplete")]
    if len(bad):
        blocks.append(Para(f"**{len(bad)} sweep(s) incomplete** — see "
                           f"[Run health](#{slug(HEALTH)})."))
    return blocks


def _intro(data: StoreData, filters: str) -> list:
    """Where the numbers come from: the store, the filters and the launches (provenance)."""
    blocks = [Para(f"Generated from the MLflow store `{provenance.store_name(data.uri)}` alone "
                   f"({len(data.runs)} training runs{'; filters: ' + filters if filters else ''}"
                   "). Regenerate with `make report` (options: `python -m reports.build "
                   "--help`).")]
    return blocks + _selection(data)


def _selection(data: StoreData) -> list:
    """With `--sweep`: every parent run (launch) of the sweep the report covers, by sweep id."""
    if not data.selected:
        return []
    parents = data.parents.set_index("run_id")
    chosen = [r for r in data.selected if r in parents.index]
    keys = sorted({str(parents.loc[r, "tags"].get(T.SWEEP_KEY) or "") for r in chosen} - {""})
    items = [f"sweep id `{parents.loc[r, T.SWEEP_ID] or '?'}`: parent run "
             f"`{provenance.short_id(r)}` ({parents.loc[r, 'experiment']}, "
             f"{parents.loc[r, 'status']}"
             + (f", superseded by {provenance.short_id(parents.loc[r, 'tags'][T.SUPERSEDED_BY])}"
                if parents.loc[r, "tags"].get(T.SUPERSEDED_BY) else "") + ")"
             for r in chosen]
    launches = len({parents.loc[r, T.SWEEP_ID] or r for r in chosen})
    same = f" (sweep_key {', '.join(f'`{k}`' for k in keys)})" if keys else ""
    blocks = [Para(f"The selected sweep covers {len(chosen)} parent run(s) from {launches} "
                   f"launch(es){same}; the report includes the runs of all of them, oldest "
                   "first:"), Bullets(items)]
    elsewhere = data.runs[~data.runs["parent_run_id"].isin(chosen)]
    if len(elsewhere):  # jobs a launch skipped: their config had completed in another sweep
        others = sorted({provenance.short_id(r) for r in elsewhere["parent_run_id"].dropna()})
        blocks.append(Para(
            f"{len(elsewhere)} of its {len(data.runs)} runs were logged by other launches "
            "that ran the same configurations (this sweep's jobs, resumed by config hash)"
            + (f": parent run(s) {', '.join(f'`{o}`' for o in others)}." if others else ".")))
    return blocks


def _notes(runs: pd.DataFrame, tasks: list[str], mode: str) -> list:
    """How to read the numbers: after the answer, before the details."""
    mc = sorted({p.get("train.mc_samples") for p in runs["params"]} - {None}, key=str)
    active = sorted(set(runs.loc[[p.get("dropout.eval_active") == "True"
                                  for p in runs["params"]], "label"]))
    selected = "; ".join(
        f"{t}: validation {', '.join(text.selection_metrics(runs[runs['task'] == t]))}"
        for t in tasks)
    return [Bullets([
        "Numbers are means over seeds ± the half-width of the 95% Student-t interval "
        "(no interval with one seed).",
        "Test metrics are measured once, at the epoch with the best standard-evaluation "
        f"validation metric named by each run's tag `select_on` ({selected or 'none'}); the "
        "test set never picks an epoch.",
        f"std = deterministic evaluation; MC = average of {', '.join(mc) or '?'} stochastic "
        f"passes (train.mc_samples). Paired comparisons use the {mode} metric.",
        "A variant label carries in brackets the preset it was run from and the settings that "
        "distinguish it from other runs of the same task (e.g. mask granularity); runs are "
        "averaged only within one label.",
        *([f"Standard evaluation is stochastic for {', '.join(active)}: dropout.eval_active="
           "true keeps awd-lstm's row mask on at evaluation, as Part 3's runs did."]
          if active else []),
    ])]
