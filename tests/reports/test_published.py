"""Published numbers: their one copy, conf/published.yaml, against the presets that reproduce
them and the report's code, and how an arm matches a published row
(reports/analysis/published.py, shown by reports/sections/published.py). Part 3's IMDB numbers
reach the report by the runs' preset tag (reports/analysis/part3.py; tests/reports/test_part3.py
checks the table on a real store)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from experiments import config as C
from reports.analysis import arms, part3, published
from reports.sections import published as published_section
from tests.conftest import CONF, compose_cfg

REPO = Path(__file__).resolve().parents[2]
RAW = yaml.safe_load((CONF / "published.yaml").read_text())
ENTRIES = {k: v for k, v in RAW.items() if not k.startswith("_")}
PRESETS = {p.stem for p in (CONF / "preset").glob("*.yaml") if not p.stem.startswith("_")}


def _params(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """A preset's run as logged: its flattened config as strings."""
    return {k: str(v) for k, v in C.flatten(compose_cfg([f"preset={preset}", *overrides])).items()}


def test_every_preset_named_in_the_data_file_exists_and_names_its_entry():
    named = {e["preset"] for e in ENTRIES.values() if e.get("preset")}
    assert named and named <= PRESETS, named - PRESETS
    for entry_id, e in ENTRIES.items():
        if e.get("preset") and not e.get("overrides"):
            assert entry_id == e["preset"], entry_id  # the id is the preset's name
        if e.get("match") == "preset":  # found by the runs' preset tag: one preset, as is
            assert e.get("preset") == entry_id and not e.get("overrides"), entry_id
    # the ids a preset reproduces name only presets; ids that are no preset name none
    for entry_id in ENTRIES.keys() & PRESETS:
        assert ENTRIES[entry_id].get("preset") == entry_id


def test_every_part3_preset_has_its_entry():
    part3_presets = {p for p in PRESETS if p.startswith("part3_")}
    assert len(part3_presets) == 8
    for preset in part3_presets:
        e = ENTRIES[preset]
        assert e["match"] == "preset" and e["task"] == "imdb", preset
        entry = published.by_preset(preset)
        assert entry is not None and entry.id == preset
        cfg = compose_cfg([f"preset={preset}"])
        assert (cfg.framework.name.value, cfg.dropout.variant.value) == (e["framework"],
                                                                          e["variant"])
        assert "published" not in cfg  # the presets carry no number any more


def test_each_reproducing_preset_has_every_parameter_its_entry_requires():
    """Every entry with a preset and required parameters is the "same setting" for that preset
    (the untied Gal rows: the preset with variant=keras_impl1); an MC row of stated passes
    differs only in the passes when the preset runs fewer."""
    checked = 0
    for entry_id, e in published.entries().items():
        if not e.preset or not e.requires:
            continue
        logged = _params(e.preset, e.overrides)
        params = arms.semantic(logged)
        assert logged["dropout.variant"] == e.variant, entry_id
        for row in published.rows_of(e):
            miss = published.mismatches(row, params)
            if row.mode == "mc" and e.mc_passes:
                passes = params["train.mc_samples"]
                assert miss == ([] if int(passes) == e.mc_passes else
                                [f"mc_samples {passes}≠{e.mc_passes}"]), entry_id
            else:
                assert miss == [], (entry_id, miss)
        checked += 1
    assert checked >= 7  # Zaremba x3, Gal medium and large, tied and untied
    gal_mc = next(r for r in published.rows() if r.setting == "large, variational tied, MC "
                  "(1000 passes)")
    assert published.mismatches(gal_mc, _params("ptb_gal_large")) == ["mc_samples 50≠1000"]


def test_report_rows_are_the_data_files_numbers_in_its_order():
    rows = published.rows()
    expected = [(entry_id, metric, mode, value) for entry_id, e in ENTRIES.items()
                if e.get("match", "closest") == "closest" and e.get("in_report", True)
                for metric, by_mode in e["test"].items() for mode, value in by_mode.items()]
    assert [(r.id, r.metric, r.mode or "unstated", r.test) for r in rows] == expected
    for r in rows:
        valid = ENTRIES[r.id].get("valid", {}).get(r.metric, {}).get(r.mode or "unstated")
        assert r.valid == valid, r.id
    assert not [r for r in rows if r.task == "imdb"]  # Part 3's IMDB: "Part 3 beside us"
    assert {r.task for r in rows} == {"ptb", "rt"}
    hidden = [k for k, e in ENTRIES.items() if e.get("in_report") is False]
    assert hidden and not {r.id for r in rows} & set(hidden)


def _forms(value: float) -> set[str]:
    """How a published number could be written out: as in the file, and as a percentage."""
    forms = {f"{value:.1f}", f"{value:.2f}"} if value > 1 else \
        {f"{value:.4f}", f"{value:.3f}".rstrip("0"), f"{value * 100:.2f}"}
    return {f for f in forms if len(f.replace(".", "").strip("0")) >= 3}


def test_no_published_number_is_written_outside_the_data_file():
    """One fact, one place: neither the report's code, nor a preset, nor REFERENCES.md writes a
    number of the data file (REFERENCES.md keeps the sources and reading notes)."""
    texts = {p: p.read_text() for p in [*(REPO / "reports").rglob("*.py"),
                                       *(CONF / "preset").glob("*.yaml"),
                                       REPO / "docs" / "REFERENCES.md"]}
    values = {v for e in ENTRIES.values() for part in ("test", "valid")
              for by_mode in (e.get(part) or {}).values() for v in by_mode.values()}
    assert len(values) > 40
    found = [(p.name, f) for v in values for f in _forms(v) for p, text in texts.items()
             if re.search(rf"(?<![\d.]){re.escape(f)}(?![\d])", text)]
    assert found == []


def test_a_malformed_entry_is_refused_naming_it():
    good = {"source": "s", "task": "ptb", "setting": "x", "variant": "none",
            "test": {"perplexity": {"unstated": 80.0, "mc": 79.0}}}
    entry = published.parse({"_shared": {"not": "an entry"}, "a": good})["a"]
    assert entry.test == {("perplexity", ""): 80.0, ("perplexity", "mc"): 79.0}
    for bad, words in (({**good, "tset": {}}, "unknown field(s) tset"),
                       ({k: v for k, v in good.items() if k != "variant"}, "missing variant"),
                       ({**good, "test": {"perplexity": {"best": 1.0}}}, "perplexity.best"),
                       ({**good, "test": {"perplexity": {"std": "80"}}}, "perplexity.std"),
                       ({**good, "match": "nearest"}, "match")):
        with pytest.raises(published.DataError, match=re.escape(words)):
            published.parse({"b": bad})


def test_published_matching():
    assert published.same(None, "None") and published.same(0.8333333333, "0.8333")
    assert published.same(True, "True") and not published.same(20, "35")
    row = next(r for r in published.rows() if r.setting == "small, no dropout")
    params = {k: str(v) for k, v in row.requires.items()}
    assert published.mismatches(row, params) == []
    params["model.num_layers"] = "None"  # resolved to 2 for the language model
    assert published.mismatches(row, params) == []
    params["task.bptt"] = "35"
    assert published.mismatches(row, params) == ["bptt 35≠20"]
    summary = pd.DataFrame([{"arm": "x", "label": "none", "framework": "torch", "n": 3,
                             "perplexity_std_mean": 120.0, "perplexity_std_half": 2.0,
                             "perplexity_mc_mean": 119.0, "perplexity_mc_half": 2.0}])
    frame, notes = published_section.table("ptb", summary, {"x": params})
    first = frame.iloc[0]
    assert first["ours"].startswith("120.00 ± 2.00 [std]")
    assert first["setting"] == "different setting: bptt 35≠20"
    assert first["published"] == f"{row.test:.2f} (valid {row.valid:.2f})"
    params["task.bptt"] = "20"
    frame, _ = published_section.table("ptb", summary, {"x": params})
    assert frame.iloc[0]["setting"] == "**same setting**"
    assert all(r.caveat in notes for r in published.for_task("ptb") if r.caveat)


def test_part3_claims_come_from_the_data_file_by_preset_not_from_params():
    preset = "part3_imdb_keras_variational"
    stale = {"published.test.accuracy_std": "0.5", "published.setting": "old"}
    runs = pd.DataFrame([
        {"arm": "a", "label": f"keras_impl0 [{preset}]", "framework": "keras", "task": "imdb",
         "preset": preset, "params": stale, "tags": {"select_on": "log_loss"},
         "metrics": {}},
        {"arm": "b", "label": "none", "framework": "keras", "task": "imdb", "preset": "",
         "params": stale, "tags": {}, "metrics": {}},
    ])
    found = part3.claims(runs)
    assert list(found["arm"]) == ["a"]  # no preset: no claim, whatever its params say
    c = found.iloc[0]
    e = ENTRIES[preset]
    assert (c.source, c.setting, c.note, c.select_on) == (e["source"], e["setting"],
                                                           e["caveat"], "log_loss")
    assert c.numbers == {(m, "" if mode == "unstated" else mode): v
                         for m, by_mode in e["test"].items() for mode, v in by_mode.items()}
    assert part3.preferred(c.numbers, "accuracy", "std") == e["test"]["accuracy"]["std"]
    assert part3.preferred(c.numbers, "log_loss", "mc") == e["test"]["log_loss"]["mc"]
    # a number whose mode the source did not state stands in for either of ours
    assert part3.preferred({("rmse", ""): 0.15}, "rmse", "mc") == 0.15
    assert math.isnan(part3.preferred(c.numbers, "perplexity", "std"))
