"""A study's stage-2 report shows the grid each tuned value was chosen from: real stage-2 runs
(`experiments.run.execute`, an IMDB study arm whose rate is `${tuned:imdb_study_tune}`) over a
logged stage 1, the report built by its CLI from the store; the means are worked out here from
the logged losses; a choice at an end of its grid and a stage that changed after the runs started
are said in bold."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.run import execute
from reports import build as cli
from tests.conftest import CPU_SLICE, compose_cfg, log_tuning_stage

pytestmark = pytest.mark.e2e
ARM = "preset=imdb_study_torch_weightdrop_column"
HEADER = ("| variant | key | stage | dropout.weight = 0.1 | dropout.weight = 0.25 | "
          "dropout.weight = 0.5 | runs here ran at |")


def _report(store: str, out: Path) -> str:
    assert cli.main(["--tracking-uri", store, "--out", str(out), "--no-log-artifacts"]) == 0
    return (out / "report.md").read_text()


def test_the_report_shows_the_grid_each_tuned_value_was_chosen_from(store, tmp_path):
    log_tuning_stage(store, [
        # 0.1: runs selected epochs 2 and 1 -> (0.30 + 0.34) / 2 = 0.32; 0.25 -> 0.33; 0.5 -> 0.36
        ("weightdrop_column", 0.1, [0.50, 0.30], 2), ("weightdrop_column", 0.1, [0.34], 1),
        ("weightdrop_column", 0.25, [0.33, 0.20], 1), ("weightdrop_column", 0.5, [0.36], 1),
        ("weightdrop", 0.5, [0.10], 1)])  # another form's grid: no run here took its rate
    for seed in (0, 1):
        execute(compose_cfg([ARM, *CPU_SLICE, f"tracking.uri={store}", f"seed={seed}"]))
    text = _report(store, tmp_path / "a")
    assert "**Values chosen by an earlier stage.** `dropout.weight`" in text
    assert "stage `imdb_study_tune`" in text
    assert (f"{HEADER}\n|---|---|---|---|---|---|---|\n| weightdrop_column | dropout.weight | "
            "imdb_study_tune | **0.3200 (n 2)** | 0.3300 (n 1) | 0.3600 (n 1) | 0.1 |") in text
    assert "| weightdrop | dropout.weight |" not in text and "not at the value" not in text
    assert ("**weightdrop_column's dropout.weight = 0.1 is the grid's lowest value**: the grid "
            "does not bracket that arm's best value") in text

    # stage 1 gains a run after stage 2 ran: 0.25 -> (0.33 + 0.21) / 2 = 0.27 wins now
    log_tuning_stage(store, [("weightdrop_column", 0.25, [0.21], 1)])
    text = _report(store, tmp_path / "b")
    assert "| **0.2700 (n 2)** |" in text and "| 0.3200 (n 2) |" in text
    assert ("**Runs of weightdrop_column ran at dropout.weight = 0.1, not at the value the rule "
            "chooses from this store now (0.25)**") in text
    assert "the grid's lowest value" not in text  # 0.25 lies inside the grid
