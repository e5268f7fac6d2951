"""The statistics, stopping rule, arms and table of `make bench`, without a framework: fake
measurements and a fake clock stand in for training (tests/experiments/test_bench.py runs the real
thing)."""

from __future__ import annotations

import math

import pytest

from experiments import bench
from experiments.bench_stats import (
    HEAD,
    Rounds,
    StopRule,
    geometric_mean,
    log_spread,
    markdown,
    pool,
    run_rounds,
    schedule,
    share_now,
)

T_975_DF1 = 12.7062047  # Student-t 97.5% quantiles from a printed table
T_975_DF2 = 4.3026527


def test_spread_of_known_log_ratios_is_the_t_half_width():
    # logs 0.1, -0.1, 0: mean 0, sample sd sqrt((0.01 + 0.01 + 0) / 2) = 0.1, n 3
    ratios = [math.exp(0.1), math.exp(-0.1), 1.0]
    assert log_spread(ratios) == pytest.approx(math.exp(T_975_DF2 * 0.1 / math.sqrt(3)) - 1,
                                               rel=1e-6)
    assert log_spread(ratios) == pytest.approx(0.28198, abs=1e-4)
    # logs 0.05, -0.05: sd 0.05 * sqrt(2), n 2
    two = [math.exp(0.05), math.exp(-0.05)]
    assert log_spread(two) == pytest.approx(
        math.exp(T_975_DF1 * 0.05 * math.sqrt(2) / math.sqrt(2)) - 1, rel=1e-6)


def test_spread_shrinks_with_rounds_at_the_same_dispersion():
    pattern = [math.exp(0.1), math.exp(-0.1), 1.0]
    spreads = [log_spread(pattern * k) for k in (1, 2, 4, 8, 16)]
    assert all(a > b for a, b in zip(spreads, spreads[1:], strict=False))
    assert spreads[-1] < 0.05 < spreads[0]


def test_spread_edge_cases_and_the_geometric_mean():
    assert math.isnan(log_spread([1.2]))
    assert log_spread([0.9, 0.9, 0.9]) == 0.0
    assert log_spread([2.0, 4.0]) == pytest.approx(log_spread([1.0, 2.0]))  # scale-free
    assert geometric_mean([2.0, 0.5]) == pytest.approx(1.0)
    assert geometric_mean([1.1, 1.1, 1.1]) == pytest.approx(1.1)


def fake(ratios: list[float], base: float = 1000.0, cpu: list[float] | None = None,
         others: dict[str, list[float]] | None = None):
    """A measurement: round i has baseline throughput swinging by a factor 3 (machine load)
    and the arm at ratios[i] of it; `cpu` the CPU-time ratios (default: the same); `others`
    more arms and their ratios. It measures the arms it is asked for (all when None)."""
    calls: list[int] = []
    arms = {"arm": (ratios, cpu or ratios)} | {k: (v, v) for k, v in (others or {}).items()}

    def measure(i: int, chosen=None) -> dict[str, dict[str, float]]:
        calls.append(i)
        b = base * (3.0 if i % 2 else 1.0)
        out = {"base": {"train": b, "cpu": b, "eval": b}}
        for name, (train, on_cpu) in arms.items():
            if chosen is None or name in chosen:
                out[name] = {"train": b * train[i], "cpu": b * on_cpu[i], "eval": b}
        return out

    return measure, calls


def test_ratios_are_paired_per_round_so_load_on_a_round_cancels():
    measure, _ = fake([0.9] * 4)
    rounds = Rounds("base", [measure(i) for i in range(4)])
    assert rounds.ratios("arm", "train") == pytest.approx([0.9] * 4)
    summary = rounds.summary("arm", "train")
    assert summary.ratio == pytest.approx(0.9) and summary.spread == pytest.approx(0.0)
    assert summary.rounds == 4
    assert log_spread(rounds.values("arm", "train")) > 0.5  # the throughput itself swings


def test_stops_at_min_rounds_when_already_precise():
    measure, calls = fake([0.9] * 10)
    rounds = run_rounds(measure, "base", StopRule(min_rounds=3, threshold=0.10))
    assert rounds.count == 3 and rounds.reason == "converged"
    assert calls == [0, 1, 2]


def test_adds_rounds_until_every_spread_is_below_the_threshold():
    ratios = [0.9 * math.exp(0.12 * (-1) ** i) for i in range(40)]
    expected = next(n for n in range(3, 40) if log_spread(ratios[:n]) < 0.10)
    assert expected > 4  # the case is not decided by the minimum
    measure, calls = fake(ratios)
    rounds = run_rounds(measure, "base", StopRule(min_rounds=3, threshold=0.10))
    assert rounds.count == expected and rounds.reason == "converged"
    assert calls == list(range(expected))
    assert rounds.worst_spread(("train", "cpu")) < 0.10


def test_a_noisy_cpu_time_ratio_keeps_it_going():
    steady = [0.9] * 40
    noisy = [0.9 * math.exp(0.12 * (-1) ** i) for i in range(40)]
    measure, _ = fake(steady, cpu=noisy)
    assert run_rounds(measure, "base", StopRule()).count > 3
    measure, _ = fake(steady, cpu=noisy)
    assert run_rounds(measure, "base", StopRule(keys=("train",))).count == 3


def test_a_precise_arm_leaves_the_rounds_and_the_rest_go_on():
    """After the minimum, only the baseline and the imprecise arms are measured; each ratio is
    over its own rounds, so the precise arm's row keeps its three."""
    noisy = [0.9 * math.exp(0.12 * (-1) ** i) for i in range(40)]
    expected = next(n for n in range(3, 40) if log_spread(noisy[:n]) < 0.10)
    asked: list = []
    measure, _ = fake([0.9] * 40, others={"noisy": noisy})

    def spy(i, chosen):
        asked.append(chosen)
        return measure(i, chosen)

    rounds = run_rounds(spy, "base", StopRule(min_rounds=3, threshold=0.10))
    assert rounds.reason == "converged" and rounds.count == expected
    assert asked[:3] == [None] * 3 and asked[3:] == [["base", "noisy"]] * (expected - 3)
    assert rounds.summary("arm", "train").rounds == 3
    assert rounds.summary("noisy", "train").rounds == expected
    assert len(rounds.values("base", "train")) == expected
    assert rounds.imprecise(("train", "cpu"), 0.10) == []


def test_a_fixed_count_measures_every_arm_every_round():
    measure, _ = fake([0.9] * 10, others={"noisy": NOISY})
    rounds = run_rounds(measure, "base", StopRule(fixed=5))
    assert [rounds.summary(a, "train").rounds for a in ("arm", "noisy")] == [5, 5]


class Clock:
    """A fake clock: each round takes `step` seconds."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now


def timed(measure, clock: Clock):
    """Each arm measured takes clock.step / 2 seconds (a round of the arm and the baseline:
    clock.step)."""
    def run(i: int, chosen=None):
        sample = measure(i, chosen)
        clock.now += clock.step / 2 * len(sample)
        return sample

    return run


NOISY = [0.9 * math.exp(0.5 * (-1) ** i) for i in range(100)]  # never below 10% in 100 rounds


def test_stops_when_the_next_round_would_overrun_the_budget():
    clock = Clock(10.0)
    measure, _ = fake(NOISY)
    rounds = run_rounds(timed(measure, clock), "base", StopRule(budget_s=45.0), clock=clock)
    assert rounds.count == 4 and rounds.reason == "budget"  # a 5th would end at 50 s > 45 s
    assert clock.now <= 45.0


def test_the_budget_counts_the_arms_a_round_measures():
    """Three arms for the first rounds (15 s each), then only the baseline and the noisy one
    (10 s): the next round is estimated per arm (10 s, not a whole round's 15), so a 4th
    fits in 58 s."""
    clock = Clock(10.0)
    measure, _ = fake([0.9] * 100, others={"noisy": NOISY})
    rounds = run_rounds(timed(measure, clock), "base", StopRule(budget_s=58.0), clock=clock)
    assert rounds.reason == "budget" and clock.now == 45.0 + 10.0  # a 5th would end at 65 s
    assert rounds.count == 4 and rounds.summary("noisy", "train").rounds == 4


def test_min_rounds_even_past_the_budget():
    clock = Clock(10.0)
    measure, _ = fake(NOISY)
    rounds = run_rounds(timed(measure, clock), "base", StopRule(budget_s=5.0), clock=clock)
    assert rounds.count == 3 and rounds.reason == "budget"


def test_fixed_rounds_ignore_precision_and_budget():
    measure, _ = fake([0.9] * 10)
    rounds = run_rounds(measure, "base", StopRule(fixed=5))
    assert rounds.count == 5 and rounds.reason == "fixed"
    clock, (measure, _) = Clock(10.0), fake(NOISY)
    rounds = run_rounds(timed(measure, clock), "base", StopRule(fixed=2, budget_s=1.0),
                        clock=clock)
    assert rounds.count == 2 and rounds.reason == "fixed"


def test_round_limit_and_a_missing_baseline():
    measure, _ = fake(NOISY)
    rounds = run_rounds(measure, "base", StopRule(max_rounds=7))
    assert rounds.count == 7 and rounds.reason == "max_rounds"
    measure, _ = fake([0.9] * 5)
    with pytest.raises(ValueError, match="baseline 'other'"):
        run_rounds(measure, "other", StopRule())


def test_the_budget_is_shared_in_proportion_to_cost():
    assert share_now(100.0, [1.0, 3.0]) == pytest.approx(25.0)
    assert share_now(100.0, [2.0]) == pytest.approx(100.0)
    assert share_now(-5.0, [1.0, 1.0]) == 0.0


def test_the_cli_resolves_quick_rounds_and_batches():
    args = bench.parse([])
    assert args.rounds is None and args.budget_min == 15 and args.torch_loops == ["auto", "eager"]
    assert bench.batches_for(args, "ptb650") == bench.BATCHES["ptb650"]
    assert bench.stop_rule(args, 60.0) == StopRule(min_rounds=3, threshold=0.10, budget_s=60.0)
    quick = bench.parse(["--quick"])
    assert quick.rounds == 2 and bench.batches_for(quick, "ptb650") == 4
    assert bench.stop_rule(quick, 60.0).fixed == 2
    assert bench.parse(["--quick", "--rounds", "5"]).rounds == 5
    with pytest.raises(SystemExit):
        bench.parse(["--rounds", "0"])
    with pytest.raises(SystemExit):
        bench.parse(["--torch-loops", "fast"])
    with pytest.raises(SystemExit):
        bench.parse(["--keras-loops", "eager"])  # Keras has auto, cpp and bptt only
    with pytest.raises(SystemExit):
        bench.parse(["--torch-loops", "bptt"])  # PyTorch has auto, cpp and eager only
    assert args.keras_loops == ["auto", "bptt"]
    # the budget goes to each framework x shape in proportion to arms x batches x cost
    ptb, cls = bench.weight(args, "torch", "ptb650"), bench.weight(args, "torch", "cls128")
    assert ptb / cls == pytest.approx(bench.BATCHES["ptb650"] * bench.COST["ptb650"]
                                      / (bench.BATCHES["cls128"] * bench.COST["cls128"]))


STEP_LOOP = ("keras_impl0", "keras_impl1", "keras_impl2", "semeniuta", "zoneout")


def test_step_loop_arms_get_one_row_per_loop():
    torch = {a.name: a for a in bench.arms("torch", None, ("auto", "eager"))}
    for v in STEP_LOOP:
        assert torch[v].loop == "auto" and torch[f"{v} [eager]"].loop == "eager"
    assert [n for n in torch if n.startswith("none")] == ["none"]
    assert not any(n.endswith("]") for n in torch if n.split(" ")[0] not in STEP_LOOP)
    assert len(torch) == len(bench.arms("torch", None)) + len(STEP_LOOP)
    only_cpp = [a.name for a in bench.arms("torch", ["keras_impl2"], ("cpp",))]
    assert only_cpp == ["none", "keras_impl2 [cpp]"]
    keras = {a.name: a for a in bench.arms("keras", None, ("auto", "bptt"))}
    for v in STEP_LOOP:  # the same step-loop variants in Keras: its compiled path covers them
        assert keras[v].loop == "auto" and keras[f"{v} [bptt]"].loop == "bptt"
    assert not any(n.endswith("]") for n in keras if n.split(" ")[0] not in STEP_LOOP)
    assert list(keras)[-2:] == ["stock_no_dropout", "stock_dropout"]
    assert len(keras) == len(bench.arms("keras", None)) + len(STEP_LOOP)


def row(arm: str, train: float, cpu: float, stop: str = "budget", loop: str = "",
        path: str = "fused", framework: str = "torch", shape: str = "ptb200") -> dict:
    return {"framework": framework, "shape": shape, "arm": arm, "loop": loop, "path": path,
            "rounds": 4, "stop": stop, "train_tokens_per_s": 1000.0, "train_ratio": 0.9,
            "train_ratio_spread": train, "train_cpu_tokens_per_s": 900.0,
            "train_cpu_ratio": 0.91, "train_cpu_ratio_spread": cpu, "eval_tokens_per_s": 3000.0,
            "eval_ratio": 1.0, "eval_ratio_spread": 0.5, "train_vs_stock_dropout": math.nan,
            "first_call_s": 0.5, "peak_rss_mb": 100.0, "threads": 1, "batches": 4}


def test_the_table_flags_rows_that_missed_the_target_and_says_why():
    rows = [row("none", 0.0, 0.0), row("naive", 0.04, 0.06),
            row("keras_impl0", 0.14, 0.02), row("keras_impl0 [cpp]", 0.03, math.nan, "fixed",
                                                "cpp", "eager"),
            row("zoneout [cpp]", 12.0, 0.01, "max_rounds", "cpp", "cpp")]
    text = markdown(rows)
    lines = text.splitlines()
    assert "Student-t" in lines[0] and "exp(hw) - 1" in lines[0]
    head = lines.index(HEAD)
    body = lines[head + 2: head + 2 + len(rows)]
    columns = HEAD.count("|")
    assert lines[head + 1].count("|") == columns and all(b.count("|") == columns for b in body)
    assert "| 0.90 ± 4% | 0.91 ± 6% |" in body[1] and "!" not in body[1]
    assert "| 0.90 ± 14%! | 0.91 ± 2% |" in body[2]
    assert "| 0.91 ± n/a! |" in body[3] and "| 1.00 ± 50% |" in body[3]  # eval: never flagged
    assert "| 0.90 ± >999%! |" in body[4]
    assert "3 of 5 rows missed the 10% train spread target: " in text
    assert "1 stopped because their shape's share of --budget-min ran out; " in text
    assert "1 stopped because the number of rounds was fixed (--rounds, --quick); " in text
    assert "1 stopped because they reached the round limit." in text
    assert "unavailable: 1 of the rows asked for `cpp` ran eager instead" in text
    assert "Rounds: torch ptb200 4 (" in text
    good = markdown([row("none", 0.0, 0.0), row("naive", 0.04, 0.06, "converged")])
    assert "Every train and CPU-time ratio has a spread below 10%." in good
    assert "unavailable" not in good


def test_the_footer_gives_each_shape_its_baseline_rounds():
    """A row's rounds are its own (a precise arm left early); the footer's per shape are the
    baseline's, measured in every round, with why the rounds stopped."""
    rows = [row("naive", 0.04, 0.06, "converged") | {"rounds": 3},
            row("none", 0.0, 0.0, "budget") | {"rounds": 9},
            row("zoneout [cpp]", 0.12, 0.08, "budget") | {"rounds": 9}]
    text = markdown(rows)
    assert "| torch | ptb200 | 3 | naive |" in text
    assert "Rounds: torch ptb200 9 (budget)." in text


def test_a_round_measures_the_baseline_before_every_six_arms():
    arms = ["base"] + [f"a{i}" for i in range(13)]
    order = schedule(arms, "base", 0)
    assert order.count("base") == 3  # before a0, a6 and a12
    assert [i for i, a in enumerate(order) if a == "base"] == [0, 7, 14]
    assert sorted(a for a in order if a != "base") == sorted(arms[1:])
    # rotated by one per round: the arm after the first baseline changes
    assert [schedule(arms, "base", r)[1] for r in range(3)] == ["a0", "a1", "a2"]
    assert schedule(["base", "x", "y"], "base", 1) == ["base", "y", "x"]
    assert schedule(["base"], "base", 4) == ["base"]


def test_the_baseline_of_a_round_is_the_geometric_mean_of_its_measurements():
    pooled = pool([{"train": 100.0, "cpu": 50.0}, {"train": 400.0, "cpu": 50.0}])
    assert pooled == pytest.approx({"train": 200.0, "cpu": 50.0})
    assert pool([{"train": 7.0}]) == pytest.approx({"train": 7.0})
