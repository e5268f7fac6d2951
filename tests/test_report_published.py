"""Published numbers beside ours: the transcribed rows of reports/published.py and how an arm
matches them, and Part 3's numbers, which live only in the part3 presets and reach the report as
the runs' published.* params (reports/part3.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as sps

from experiments import config as C
from reports import part3, published
from tests import part3_store
from tests.conftest import compose_cfg

REPO = Path(__file__).resolve().parent.parent


def test_published_rows_match_the_paper_presets():
    """The presets that reproduce a paper must be 'same setting' for that paper's row."""
    from reports import arms

    for preset, source, setting in (
            ("ptb_zaremba_small", "Zaremba et al. 2014", "small, no dropout"),
            ("ptb_zaremba_medium", "Zaremba et al. 2014", "medium, dropout 0.5"),
            ("ptb_zaremba_large", "Zaremba et al. 2014", "large, dropout 0.65"),
            ("ptb_gal_large", "Gal & Ghahramani 2016", "large, variational tied")):
        params = {k: str(v) for k, v in C.flatten(compose_cfg([f"preset={preset}"])).items()}
        row = next(r for r in published.PUBLISHED if (r.source, r.setting) == (source, setting))
        assert published.mismatches(row, arms.semantic(params)) == [], preset
        assert params["dropout.variant"] == row.variant
    gal = {k: str(v) for k, v in C.flatten(compose_cfg(["preset=ptb_gal_large"])).items()}
    mc = next(r for r in published.PUBLISHED if r.setting == "large, variational tied, MC "
              "(1000 passes)")
    assert published.mismatches(mc, gal) == ["mc_samples 50≠1000"]



def test_published_matching():
    assert published.same(None, "None") and published.same(0.8333333333, "0.8333")
    assert published.same(True, "True") and not published.same(20, "35")
    row = next(r for r in published.PUBLISHED if r.setting == "small, no dropout")
    params = {k: str(v) for k, v in row.requires.items()}
    assert published.mismatches(row, params) == []
    params["model.num_layers"] = "None"  # resolved to 2 for the language model
    assert published.mismatches(row, params) == []
    params["task.bptt"] = "35"
    assert published.mismatches(row, params) == ["bptt 35≠20"]
    summary = pd.DataFrame([{"arm": "x", "label": "none", "framework": "torch", "n": 3,
                             "perplexity_std_mean": 120.0, "perplexity_std_half": 2.0,
                             "perplexity_mc_mean": 119.0, "perplexity_mc_half": 2.0}])
    frame, notes = published.table("ptb", summary, {"x": params})
    first = frame.iloc[0]
    assert first["ours"].startswith("120.00 ± 2.00 [std]")
    assert first["setting"] == "different setting: bptt 35≠20"
    params["task.bptt"] = "20"
    frame, _ = published.table("ptb", summary, {"x": params})
    assert frame.iloc[0]["setting"] == "**same setting**"
    assert all(r.caveat in notes for r in published.for_task("ptb") if r.caveat)



def test_published_test_params_are_read_with_their_mode():
    got = part3.numbers({"published.test.accuracy_std": "0.8462",
                         "published.test.accuracy_mc": "0.8463",
                         "published.test.log_loss": "0.347", "published.note": "x",
                         "train.lr": "0.1"})
    assert got == {("accuracy", "std"): 0.8462, ("accuracy", "mc"): 0.8463,
                   ("log_loss", ""): 0.347}
    assert part3.preferred(got, "accuracy", "std") == 0.8462
    assert part3.preferred(got, "log_loss", "mc") == 0.347  # mode not stated: either
    assert math.isnan(part3.preferred(got, "perplexity", "std"))



def test_part3_numbers_live_only_in_the_presets():
    """One fact, one place: the IMDB rows are gone from reports/published.py and no number of
    a part3 preset is written in the report's code."""
    assert not [r for r in published.PUBLISHED if r.task == "imdb"]
    assert [r for r in published.PUBLISHED if r.task == "rt"]  # the rest stays
    code = "\n".join(p.read_text() for p in (REPO / "reports").glob("*.py"))
    for preset in part3_store.TRUE:
        text = (REPO / "conf" / "preset" / f"{preset}.yaml").read_text()
        block = text[text.index("  test:"):]
        for line in block.splitlines()[1:]:
            value = line.split(":")[1].strip()
            assert value not in code, (preset, value)



def test_kendall_tau_equals_scipy():
    for x, y in (([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]), ([1, 2, 2, 4], [4, 3, 2, 1]),
                 ([1, 1, 3, 4, 5, 6], [1, 2, 2, 3, 6, 5])):
        assert part3.kendall_tau(x, y) == pytest.approx(sps.kendalltau(x, y).statistic)
