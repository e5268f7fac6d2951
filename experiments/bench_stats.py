"""The statistics, the stopping rule and the table of `make bench`, free of any framework.

Why a separate module: the round loop takes a measurement callable, so the logic that decides
what a ratio and its spread are, when to stop measuring and how the table flags an imprecise
ratio is tested with fake measurements and a fake clock (tests/experiments/test_bench_stats.py)
instead of timing real training.

Ratios are paired per round: in round i the arms and their framework's baseline are measured,
and the ratio of round i is arm_i / baseline_i, so that a burst of machine load that slows a
whole round cancels out. After the first rounds an arm whose ratios are precise enough leaves
the rounds, so the budget goes to the imprecise ones (each ratio is over the rounds its arm was
in; a row's round count is its own). A ratio is reported as the geometric mean over rounds; its
spread is the half-width hw of the 95% Student-t interval of the mean of log(ratio_i), reported
as the relative figure exp(hw) - 1. Unlike (max - min) / median of a throughput, it is the
uncertainty of the reported ratio itself and shrinks like t(n-1) / sqrt(n) with more rounds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from experiments.metrics import TRAIN_TOKENS_PER_S

CONFIDENCE = 0.95
TARGET = 0.10  # the spread every train ratio (wall and CPU time) should reach
# One round: arm -> metric ("train", "cpu", "eval") -> throughput (tokens/s).
Sample = Mapping[str, Mapping[str, float]]
# (round index, the arms to measure; None: all of them) -> what that round measured
Measure = Callable[[int, Sequence[str] | None], Sample]
STOP_REASONS = ("converged", "budget", "fixed", "max_rounds")


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student-t critical value (scipy is a dependency of the suite already)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


def log_spread(ratios: Sequence[float], confidence: float = CONFIDENCE) -> float:
    """exp(hw) - 1, where hw is the half-width of the Student-t interval of the mean of
    log(ratio) over rounds; nan with fewer than two rounds (no dispersion to estimate), so a
    single round never counts as precise."""
    n = len(ratios)
    if n < 2:
        return math.nan
    logs = [math.log(r) for r in ratios]
    half_width = t_quantile(n - 1, confidence) * statistics.stdev(logs) / math.sqrt(n)
    return math.expm1(half_width)


def geometric_mean(ratios: Sequence[float]) -> float:
    """The centre of the interval `log_spread` measures (the mean is taken on the log scale)."""
    return math.exp(statistics.fmean(math.log(r) for r in ratios)) if ratios else math.nan


@dataclass(frozen=True)
class Summary:
    """A paired ratio over rounds: geometric mean and spread (see the module docstring)."""

    ratio: float
    spread: float
    rounds: int


def summarize(ratios: Sequence[float]) -> Summary:
    return Summary(geometric_mean(ratios), log_spread(ratios), len(ratios))


@dataclass(frozen=True)
class StopRule:
    """When the round loop stops.

    fixed: exactly that many rounds of every arm (`--rounds`, `--quick`), nothing else is
    looked at. Otherwise every arm for min_rounds, then only the baseline and the arms whose
    spread on some metric in `keys` is not yet below `threshold`; stop as soon as none is left
    ("converged"), or when the next round would end past `budget_s` seconds after the loop
    started ("budget": the shape's share of --budget-min; a round's estimate is the mean time
    per arm so far times its arms, so the share is kept rather than overrun by a whole round),
    or at max_rounds (a guard for an unlimited budget).
    """

    min_rounds: int = 3
    threshold: float = 0.10
    budget_s: float = math.inf
    fixed: int | None = None
    max_rounds: int = 50
    keys: tuple[str, ...] = ("train", "cpu")


@dataclass
class Rounds:
    """What the round loop measured, and why it stopped (one of STOP_REASONS)."""

    baseline: str
    samples: list[Sample] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    reason: str = ""

    @property
    def count(self) -> int:
        return len(self.samples)

    def arms(self) -> list[str]:
        """Every arm measured, in the order they first appear."""
        return list(dict.fromkeys(arm for sample in self.samples for arm in sample))

    def values(self, arm: str, key: str) -> list[float]:
        return [s[arm][key] for s in self.samples if arm in s]

    def ratios(self, arm: str, key: str, reference: str | None = None) -> list[float]:
        """arm_i / reference_i over the rounds that measured both (reference: the baseline
        unless named)."""
        ref = reference or self.baseline
        return [s[arm][key] / s[ref][key] for s in self.samples if arm in s and ref in s]

    def summary(self, arm: str, key: str, reference: str | None = None) -> Summary:
        return summarize(self.ratios(arm, key, reference))

    def spreads(self, arm: str, keys: Sequence[str]) -> list[float]:
        return [log_spread(self.ratios(arm, key)) for key in keys]

    def imprecise(self, keys: Sequence[str], threshold: float) -> list[str]:
        """The non-baseline arms with a spread on some key not below threshold (nan: too few
        rounds to tell)."""
        return [arm for arm in self.arms() if arm != self.baseline
                and not all(s < threshold for s in self.spreads(arm, keys))]

    def worst_spread(self, keys: Sequence[str]) -> float:
        """The largest spread over arms and `keys` (nan until there are two rounds)."""
        spreads = [s for arm in self.arms() if arm != self.baseline
                   for s in self.spreads(arm, keys)]
        if any(math.isnan(s) for s in spreads):
            return math.nan
        return max(spreads, default=0.0)

    def next_arms(self, rule: StopRule) -> list[str] | None:
        """The arms the next round measures: all (None) until min_rounds or with a fixed count,
        then the baseline and the imprecise ones."""
        if rule.fixed is not None or self.count < rule.min_rounds:
            return None
        return [self.baseline, *self.imprecise(rule.keys, rule.threshold)]

    def seconds_for(self, arms: int) -> float:
        """Estimated seconds of a round of `arms` arms: the mean time per arm so far."""
        return arms * statistics.fmean(d / len(s) for d, s in zip(self.durations, self.samples,
                                                                     strict=True))


def stop_reason(rounds: Rounds, rule: StopRule, elapsed: float) -> str | None:
    """Why the loop stops after the rounds so far, or None to measure another round."""
    n = rounds.count
    if rule.fixed is not None:
        return "fixed" if n >= rule.fixed else None
    if n < rule.min_rounds:
        return None
    pending = rounds.imprecise(rule.keys, rule.threshold)
    if not pending:
        return "converged"
    if n >= rule.max_rounds:
        return "max_rounds"
    if elapsed + rounds.seconds_for(1 + len(pending)) > rule.budget_s:
        return "budget"
    return None


def run_rounds(measure: Measure, baseline: str, rule: StopRule,
               clock: Callable[[], float] = time.monotonic,
               report: Callable[[Rounds], None] | None = None) -> Rounds:
    """Call measure(0, arms), measure(1, arms), ... (one round each, `baseline` always in it;
    arms as Rounds.next_arms says) until `rule` says stop; `report` sees the rounds after each
    one (progress on a long run). The clock is a parameter so the budget is testable without
    waiting."""
    rounds, start = Rounds(baseline), clock()
    while True:
        began = clock()
        sample = measure(rounds.count, rounds.next_arms(rule))
        if baseline not in sample:
            raise ValueError(f"round {rounds.count} did not measure the baseline {baseline!r}")
        rounds.samples.append(sample)
        rounds.durations.append(clock() - began)
        reason = stop_reason(rounds, rule, clock() - start)
        if report is not None:
            report(rounds)
        if reason is not None:
            rounds.reason = reason
            return rounds


BASELINE_EVERY = 6  # arms measured per measurement of the baseline within a round


def schedule(arms: Sequence[str], baseline: str, round_: int) -> list[str]:
    """The order of one round: the other arms rotated by one per round (no arm always follows
    the same one), the baseline before every BASELINE_EVERY of them. Every ratio of a round
    shares the baseline's noise; the round's baseline figure is the geometric mean of its
    measurements (`pool`), so a few more of them cut that shared part for all the arms."""
    others = [a for a in arms if a != baseline]
    k = round_ % len(others) if others else 0
    order: list[str] = []
    for i, arm in enumerate(others[k:] + others[:k]):
        order += [baseline, arm] if i % BASELINE_EVERY == 0 else [arm]
    return order or [baseline]


def pool(measurements: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One figure per metric from an arm's measurements in a round: their geometric mean."""
    return {key: geometric_mean([m[key] for m in measurements]) for key in measurements[0]}


def share_now(remaining_s: float, weights: Sequence[float]) -> float:
    """The share of the first of `weights` (the part about to run; a weight is its expected
    cost) in what is left of the budget. Recomputed before each part, so time a converged part
    did not use goes to the parts after it, and an overrun is taken from them."""
    whole = sum(weights)
    return max(remaining_s, 0.0) * weights[0] / whole if whole > 0 else 0.0


# The table of `make bench` (rows: the dicts experiments/bench.py writes to bench.csv).


def missed(row: dict, key: str) -> bool:
    """A train spread at or above TARGET (nan, one round only, counts as missed)."""
    return not row[f"{key}_ratio_spread"] < TARGET


def cell(row: dict, key: str, flag: bool) -> str:
    """`ratio ± spread`, `!` when flagged and missed: the spread sits next to the figure it
    qualifies, so no ratio is read without its precision."""
    spread = row[f"{key}_ratio_spread"]
    shown = "n/a" if math.isnan(spread) else f"{spread:.0%}" if spread < 10 else ">999%"
    text = f"{row[f'{key}_ratio']:.2f} ± {shown}"
    return text + ("!" if flag and missed(row, key) else "")


CAPTION = (f"Ratios to the framework's baseline (PyTorch `none`, Keras `stock_no_dropout`), paired "
           f"per round, geometric mean over rounds; ± spread = exp(hw) - 1, hw the half-width of "
           f"the 95% Student-t interval of the mean log ratio over rounds; `!`: a train spread "
           f"at or above {TARGET:.0%}. `train tok/s` and `eval tok/s` are each row's median "
           f"over its own rounds, unpaired (the baseline's over all of its rounds): absolute "
           f"throughput, which carries the load of the rounds a row ran in, so two rows' tok/s "
           f"can be close beside different ratios; the ratio, paired within a round, is the "
           f"figure to compare.")
HEAD = ("| framework | shape | rounds | variant | path | train tok/s | ratio ± spread "
        "| CPU-time ratio ± spread | eval tok/s | eval ratio ± spread | vs stock dropout "
        "| first call s | peak RSS MB |")


def markdown(rows: list[dict]) -> str:
    """Caption, table and footer: how many rows missed the target and why, rounds per shape,
    and cpp rows that ran another path (the compiled loop could not be built)."""
    lines = [CAPTION, "", HEAD, "|" + "---|" * (HEAD.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['framework']} | {r['shape']} | {r['rounds']} | {r['arm']} | {r['path']} "
            f"| {r[TRAIN_TOKENS_PER_S]:,.0f} | {cell(r, 'train', True)} "
            f"| {cell(r, 'train_cpu', True)} | {r['eval_tokens_per_s']:,.0f} "
            f"| {cell(r, 'eval', False)} | {r['train_vs_stock_dropout']:.2f} "
            f"| {r['first_call_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    lines.append("")
    bad = [r for r in rows if missed(r, "train") or missed(r, "train_cpu")]
    if bad:
        text = {"budget": "their shape's share of --budget-min ran out",
                "fixed": "the number of rounds was fixed (--rounds, --quick)",
                "max_rounds": "they reached the round limit"}
        why = {reason: sum(r["stop"] == reason for r in bad) for reason in text}
        lines.append(f"{len(bad)} of {len(rows)} rows missed the {TARGET:.0%} train spread "
                     "target: " + "; ".join(f"{n} stopped because {text[k]}"
                                           for k, n in why.items() if n) + ".")
    else:
        lines.append(f"Every train and CPU-time ratio has a spread below {TARGET:.0%}.")
    shapes: dict[tuple[str, str], dict] = {}  # the row of each shape with the most rounds:
    for r in rows:  # its baseline, measured in every round, and why the rounds stopped
        key = (r["framework"], r["shape"])
        if key not in shapes or r["rounds"] > shapes[key]["rounds"]:
            shapes[key] = r
    lines.append("Rounds: " + ", ".join(f"{f} {s} {r['rounds']} ({r['stop']})"
                                        for (f, s), r in shapes.items()) + ".")
    fallback = [r for r in rows if r["loop"] == "cpp" and "cpp" not in r["path"].split("+")]
    if fallback:
        lines.append(f"The compiled loop was unavailable: {len(fallback)} of the rows asked "
                     f"for `cpp` ran {'/'.join(sorted({r['path'] for r in fallback}))} instead "
                     f"(see the worker's warning).")
    return "\n".join(lines) + "\n"
