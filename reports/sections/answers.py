"""The report opens with its answers, before any numbered section: one line per primary question
(verdict, difference, and the interval at the level the verdict used), then what a reader must
know before trusting the tables (runs left out, incomplete sweeps)."""

from __future__ import annotations

from reports import fmt, markdown
from reports.analysis.verdicts import family_interval
from reports.sections import titles
from reports.sections.context import Context, Part, Section


def write(ctx: Context, _drawn: dict) -> list[Part]:
    """One line per primary question (or one saying there are none), then the alerts."""
    return [*_answers(ctx), *_alerts(ctx)]


def _answers(ctx: Context) -> list[str]:
    """One line per primary question; where a sweep declared none, one line saying where the
    numbers are."""
    items = []
    for task in ctx.tasks:
        c = ctx.comparisons(task)
        for r in c[c["family"] == "primary"].itertuples():
            m = r.metric
            adjusted = family_interval(r)
            numbers = (f"A − B {fmt.with_unit(m, r.diff, True)}"
                       + (f", {adjusted}" if adjusted else "") + f", {r.n} paired seeds"
                       if fmt.finite(r.diff) else f"{r.n} paired seeds")
            items.append(f"{task}: **{r.declared}**: {r.verdict} ({numbers})")
    if not items:
        return ["**Answers.** No sweep in this report declared primary questions: the summary "
                "below gives every arm's numbers, the appendix every pairwise screen."]
    return [f"**Answers** (the primary questions the sweeps declared; details in section "
            f"{ctx.number(titles.PRIMARY)}):", markdown.bullets(items)]


def _alerts(ctx: Context) -> list[str]:
    """Runs left out of the tables, and incomplete sweeps, each pointing to Run health."""
    blocks = []
    health = ctx.health
    if len(health.flagged):
        counts = health.flagged["category"].value_counts()
        text = ", ".join(f"{n} {c}" for c, n in counts.items())
        blocks.append(f"**Run health: {len(health.flagged)} run(s) are not in the tables "
                      f"({text})** — see {ctx.link(titles.HEALTH)}.")
    bad = health.sweeps[health.sweeps["verdict"].str.startswith("incomplete")]
    if len(bad):
        blocks.append(f"**{len(bad)} sweep(s) incomplete** — see {ctx.link(titles.HEALTH)}.")
    return blocks


SECTION = Section(titles.ANSWERS, write)
