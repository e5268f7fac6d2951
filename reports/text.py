"""Numeric tables -> the text tables and sentences of the report (display units, bold best,
flag counts), kept apart from the section assembly in `reports.report`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments import tracking as T
from experiments.metrics import (
    BEST_EPOCH,
    EPOCH_CPU_SECONDS,
    EPOCH_SECONDS,
    EPOCHS_RUN,
    EVAL_SECONDS,
    MODES,
    STD,
    TEST,
    TRAIN_TOKENS_PER_S,
    mode_key,
)
from experiments.metrics import key as metric_key
from reports import fmt, provenance
from reports.compare import QUESTIONS
from reports.health import Health
from reports.load import HIGHER_IS_BETTER, StoreData, task_metrics
from reports.render import Bullets, Para, Table, slug
from reports.stats import ALPHA

APPENDIX = "Appendix A. All pairwise comparisons"


def summary_caption(task: str, runs: pd.DataFrame) -> str:
    mine = runs[runs["task"] == task]
    epochs = sorted({p.get("train.epochs") for p in mine["params"]} - {None}, key=str)
    return (f"Test metrics at the epoch with the best validation "
            f"{' or '.join(selection_metrics(mine))} (standard evaluation), mean ± 95% CI over "
            f"seeds; at most {', '.join(epochs)} epochs per run; best value of each column in "
            "bold.")


def selection_metrics(runs: pd.DataFrame) -> list[str]:
    """The validation metrics that picked the runs' best epochs: tag `select_on`, or, for runs
    logged before it existed, the task's first metric."""
    found = set()
    for task, tags, metrics in zip(runs["task"], runs["tags"], runs["metrics"], strict=True):
        default = task_metrics(task, metrics)
        found.add(tags.get(T.SELECT_ON) or (default[0] if default else "?"))
    return sorted(fmt.metric_name(m) for m in found)


def bold_best(frame: pd.DataFrame, col: str, metric: str) -> set[int]:
    values = frame[f"{col}_mean"]
    if values.notna().sum() < 2 or values.nunique() < 2:
        return set()
    best = values.max() if HIGHER_IS_BETTER.get(metric, True) else values.min()
    return set(frame.index[values == best])


def summary_text(s: pd.DataFrame, task: str, flagged: pd.DataFrame) -> pd.DataFrame:
    present = summary_metrics(s)
    metrics = [m for m in task_metrics(task, [metric_key(TEST, m, STD) for m in present])
               if m in present]
    out = pd.DataFrame({"variant": s["label"], "framework": s["framework"],
                        "seeds": s["n"].astype(str)})
    for m in metrics:
        for mode in MODES:
            col = mode_key(m, mode)
            best = bold_best(s, col, m)
            out[f"{fmt.metric_name(m)} {mode}"] = [
                (f"**{t}**" if i in best else t) for i, t in
                ((i, fmt.pm(m, s.at[i, f"{col}_mean"], s.at[i, f"{col}_half"])) for i in s.index)]
    out["best epoch"] = [_spread(r, BEST_EPOCH) for r in s.itertuples()]
    if s[f"{EPOCHS_RUN}_mean"].notna().any():
        out["epochs run"] = [_spread(r, EPOCHS_RUN) for r in s.itertuples()]
    out["tokens/s"] = [fmt.count(x) for x in s["tokens_per_s_mean"]]
    out["epoch s"] = [fmt.seconds(x) for x in s[f"{EPOCH_SECONDS}_mean"]]
    mine = flagged[flagged["task"] == task] if len(flagged) else flagged
    presets = [(t or {}).get(T.PRESET, "") if isinstance(t, dict) else ""
               for t in mine.get("tags", [])]
    out["flagged runs"] = [str(int(((mine["framework"] == r.framework)
                                    & (mine["variant"] == r.variant)
                                    & (pd.Series(presets, index=mine.index, dtype=object)
                                       == r.preset)).sum()))
                           if len(mine) else "0" for r in s.itertuples()]
    return out


def _spread(r, key: str) -> str:
    """Mean over seeds, with the range when the seeds differ: `4.2 (3–6)`."""
    mean, low, high = (getattr(r, f"{key}_{x}") for x in ("mean", "min", "max"))
    if not fmt.finite(mean):
        return fmt.DASH
    return f"{mean:.1f}" + (f" ({low:.0f}–{high:.0f})" if low != high else "")


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


def primary_blocks(c: pd.DataFrame) -> list:
    """The primary questions of one task in words, then their table; without declared primary
    comparisons, one paragraph saying so and where the automatic ones are (no prose for them)."""
    first = c[c["family"] == "primary"]
    if first.empty:
        every = c[c["family"] == "all"]
        if every.empty:
            return [Para("No primary comparisons declared and no comparable pairs of arms.")]
        resolved = int((every["p_holm"] < ALPHA).sum())
        return [Para(
            f"**No primary comparisons declared** (the selected sweeps carry no "
            f"`primary_comparisons` tag: run before sweeps declared their questions). As before, "
            f"all {len(every)} automatic comparisons are Holm-corrected as one screening family; "
            f"{resolved} survive the correction. They are listed in the appendix, "
            f"[{APPENDIX}](#{slug(APPENDIX)}), not discussed here: without a question stated in "
            "advance they are a screen, not an answer.")]
    testable = int(first["p"].notna().sum())
    level = first["alpha_family"].dropna()
    at = f"α/m = {level.iloc[0]:.4g}" if len(level) else "α/m"
    declared = first["declared_seeds"].dropna()
    seeds = int(declared.max()) if len(declared) else 0
    extra = first[first["n"] > seeds] if seeds else first.iloc[:0]
    return [
        Para(f"Family: the {len(first)} comparisons the sweep declared ({testable} testable "
             "here), Holm-corrected together (α = 0.05; an untestable one counts as not "
             "rejected). Verdicts: A or B better (paired t-test, Holm), **equivalent** within "
             "the sweep's declared margin (paired two one-sided tests, Holm over the same "
             "family), or **undecided**, with what an answer would cost. Runs are paired by "
             "seed even where the two arms differ in other settings, listed under *also differs "
             f"in*. *MDE*: the smallest difference this design (n seeds, the observed SD of the "
             f"paired differences) detects with 80% power in a two-sided paired t-test, at the "
             f"family's level {at} (Holm's first step) and at α = 0.05 before correction."
             + " The verdicts pair runs by seed on this one test set: they answer whether a "
             "difference exceeds training noise. Where both arms logged their test predictions, "
             "*95% CI, seeds + test examples* adds the sampling of the test set itself (a "
             "population of reviews, not these ~2,500), and a win that interval does not confirm "
             "is flagged as not robust to it."
             + (f" Seeds declared before the first run: {seeds}." if seeds else
                " The sweep declared no seed count.")
             + (f" **{len(extra)} comparison(s) have more paired seeds than declared**: seeds "
                "added after looking at p-values are optional stopping; read those verdicts "
                "with care." if len(extra) else "")),
        Bullets(list(first["sentence"])),
        Table(comparison_table(first, primary=True), "Primary comparisons"),
    ]


def comparison_table(c: pd.DataFrame, primary: bool = False) -> pd.DataFrame:
    """Comparisons as text; the appendix's version also names each row's family."""
    m = c["metric"].iloc[0]
    cols = {} if primary else {"family": [_FAMILY_WORDS[f] for f in c["family"]],
                               "question": c["question"]}
    frame = pd.DataFrame({
        **cols, "A": c["a"], "B": c["b"],
        "also differs in": [d or fmt.DASH for d in c["differs"]], "seeds": c["n"].astype(str),
        f"mean A ({fmt.metric_name(m)})": [fmt.num(m, x) for x in c["mean_a"]],
        "mean B": [fmt.num(m, x) for x in c["mean_b"]],
        "A − B [95% CI]": [f"{fmt.num(m, r.diff, True)} {fmt.interval(m, r.low, r.high)}"
                           for r in c.itertuples()],
        "d_z": [fmt.effect(x) for x in c["effect"]], "p": [fmt.pvalue(x) for x in c["p"]],
        "Holm p": [fmt.pvalue(x) if f != "exploratory" else "uncorrected"
                   for x, f in zip(c["p_holm"], c["family"], strict=True)],
        "MDE (80% power)": [fmt.diff_size(m, x) for x in c["mde"]], "verdict": c["verdict"],
    })
    if primary:  # the family's level and the equivalence test beside the verdict; d_z leaves
        frame = frame.drop(columns=["d_z"])
        frame.insert(len(frame.columns) - 1, "MDE at α/m", [
            fmt.diff_size(m, x) for x in c.get("mde_family", pd.Series(np.nan, c.index))])
        frame.insert(frame.columns.get_loc("A − B [95% CI]") + 1,
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


_FAMILY_WORDS = {"primary": "primary", "exploratory": "exploratory (uncorrected)",
                 "all": "all (Holm, none declared)"}


def appendix_blocks(c: pd.DataFrame) -> list:
    if c.empty:
        return [Para("No comparisons (comparisons need two arms that share seeds).")]
    counts = c["family"].value_counts()
    words = ", ".join(f"{n} {_FAMILY_WORDS[f]}" for f, n in counts.items())
    asked = [q for q in QUESTIONS if q in set(c["question"])]
    return [Table(comparison_table(c), f"Every pairwise comparison: {words}. Exploratory rows "
                  "are not corrected for multiplicity: read them as leads, not findings.",
                  kind="wide"),
            *([Bullets([f"*{q}*: {QUESTIONS[q]}" for q in asked])] if asked else [])]


def cost_text(c: pd.DataFrame) -> pd.DataFrame:
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
            "status": f["status"], T.COMPLETED: ["yes" if c else "no" for c in f[T.COMPLETED]],
            "category": f["category"], "problem": [str(p)[:300] for p in f["problem"]],
        }), "Runs not used", kind="wide"))
    s = health.sweeps
    if len(s):
        shown = s.assign(parent_run=[provenance.short_id(r) for r in s["parent_run"]],
                         sweep=[str(g)[:8] for g in s["sweep"]])
        shown = shown.astype(object).map(lambda v: fmt.DASH if pd.isna(v) else str(v))
        shown = shown.rename(columns={
            T.SWEEP_ID: "sweep id", "parent_run": "parent run", "runs_here": "runs in store",
            "runs_completed": "runs completed", "finished": "jobs finished",
            "skipped": "jobs skipped", "failed": "jobs failed"})
        blocks.append(Table(shown, "Sweeps (parent runs; job counts from the sweep's closing "
                            "summary; sweep: the sweep_key its launches share)", kind="wide"))
        blocks += relaunch_blocks(s)
    else:
        blocks.append(Para("No sweep parent runs among the selected runs."))
    return blocks


def relaunch_blocks(sweeps: pd.DataFrame) -> list:
    """One sentence per sweep launched more than once: its parents in order, and that only the
    newest one's counts judge it (earlier launches' completed jobs are its skipped ones)."""
    lines = []
    for group, g in sweeps.groupby("sweep", sort=False):
        launches = g[T.SWEEP_ID].replace("", None).fillna(g["parent_run"]).nunique()
        if launches < 2:  # one launch (a parent per experiment it logged to)
            continue
        g = g.iloc[::-1]  # the table lists the newest parent first
        parents = ", ".join(f"{provenance.short_id(r.parent_run)} (sweep id {r.sweep_id or '?'}, "
                            f"{r.experiment}, {r.status})" for r in g.itertuples())
        lines.append(f"Sweep {str(group)[:8]} was launched {launches} times; parents, oldest "
                     f"first: {parents}. {int(g['runs_completed'].sum())} completed run(s) "
                     "across them. A relaunch skips the jobs earlier launches completed, so "
                     "the earlier parents are superseded, not incomplete, and the newest "
                     "parent's counts judge the sweep.")
    return [Bullets(lines)] if lines else []
