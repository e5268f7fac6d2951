"""A sweep's jobs composed and checked up front (experiments/sweep_jobs.py), and the one-line
wording of refusals (experiments/refusal.py)."""

from __future__ import annotations

import time

import pytest
from hydra import compose
from omegaconf import OmegaConf

from experiments import sweep_jobs
from experiments.refusal import Refused, one_line
from tests.support.sweep_grid import grid


def test_each_job_equals_hydras_own_composition(hydra_app):
    overrides = [*grid("part3"), "seed=0,3", "train.lr=0.5,1e-3", "tracking={force: false}",
                 "++train.clip_norm=1.0", "train.threads=1"]
    jobs = sweep_jobs.compose_jobs("config", overrides)
    assert len(jobs) == 8 * 2 * 2
    for job in jobs[::5]:
        full = compose("config", list(job.overrides))
        assert OmegaConf.to_yaml(job.cfg) == OmegaConf.to_yaml(full), job.overrides
    # presets set the task: the parents go where the jobs log (the root config says rt)
    assert sweep_jobs.experiments(jobs) == ["imdb"]


def test_the_90_job_grid_is_checked_in_seconds_and_skips_are_not_refused(hydra_app):
    start = time.process_time()
    jobs = sweep_jobs.checked("config", grid("imdb_questions"))
    seconds = time.process_time() - start
    print(f"imdb_questions: {len(jobs)} jobs composed and checked in {seconds:.2f} s CPU")
    reasons = {j.skip for j in jobs}
    assert len(jobs) == 90 and sum(not j.skip for j in jobs) == 55
    assert reasons == {"", "not an arm of this study (study.arms)"}
    assert seconds < 15  # ~2 s on an idle core; generous for a loaded CI machine


# (jobs, jobs that run, sweep_key) of every committed grid, computed before the rules moved
# into frameworks/rules.py: a rerun of a sweep must find its parents and completed runs.
PINNED_SWEEPS = {"cpu": (156, 141, "1643ed20014038d8"),
                 "imdb_questions": (90, 55, "a22c64b09df2be9c"),
                 "paper": (5, 5, "1f5513775942313b"), "part3": (40, 40, "114f8185181169ba"),
                 "ptb_cpu": (84, 78, "891f2dc8ee3778d0"), "smoke": (4, 4, "a165423f67165069")}


def test_every_grid_keeps_its_jobs_and_sweep_key(hydra_app):
    for preset, expected in PINNED_SWEEPS.items():
        jobs = sweep_jobs.checked("config", grid(preset))
        assert (len(jobs), sum(not j.skip for j in jobs), sweep_jobs.sweep_key(jobs)) == \
            expected, preset


def test_a_bad_job_is_refused_naming_key_value_and_job(hydra_app):
    with pytest.raises(Refused) as e:
        sweep_jobs.checked("config", ["sweep=smoke", "seed=0,1", "train.epochs=2,0"])
    message = str(e.value)
    assert "train.epochs=0 must be >= 1" in message and "seed=0" in message
    assert "job 2 of 4" in message and "\n" not in message


def test_a_pair_a_framework_lacks_is_skipped_not_refused(hydra_app):
    jobs = sweep_jobs.checked("config", ["sweep=smoke", "framework=keras", "variant=torch_builtin"])
    assert [j.skip for j in jobs] == ["framework does not implement this variant"]


def test_a_variant_or_rate_a_cell_lacks_is_skipped_not_refused(hydra_app):
    jobs = sweep_jobs.checked("config", [
        "sweep=smoke", "model.cell=lstm,gru", "framework=keras", "variant=keras3_builtin,zoneout"])
    skips = {(j.cfg.model.cell.value, j.cfg.dropout.variant.value): j.skip for j in jobs}
    assert skips[("lstm", "keras3_builtin")] == skips[("lstm", "zoneout")] == ""
    assert skips[("gru", "keras3_builtin")] == "variant not defined for model.cell=gru"
    # zoneout's default rates zone c, which a GRU does not have; with zoneout_cell=0 it runs
    assert "dropout.zoneout_cell" in skips[("gru", "zoneout")]
    hidden_only = sweep_jobs.checked("config", [
        "sweep=smoke", "model.cell=gru", "variant=zoneout", "dropout.zoneout_cell=0"])
    assert [j.skip for j in hidden_only] == [""]


def test_the_sweep_key_is_the_set_of_configs(hydra_app):
    def key(*overrides: str) -> str:
        return sweep_jobs.sweep_key(sweep_jobs.compose_jobs("config", list(overrides)))

    same = key("sweep=smoke", "seed=0,1")
    assert key("seed=1,0", "sweep=smoke", "tracking.uri=sqlite:////elsewhere.db") == same
    assert key("sweep=smoke", "seed=0,1", "train.threads=1") == same  # not semantic
    assert key("sweep=smoke", "seed=0,1,2") != same
    assert key("sweep=smoke", "seed=0,1", "train.lr=0.01") != same


def test_hydra_errors_read_as_one_line_with_what_is_allowed(hydra_app):
    def message(*overrides: str) -> str:
        try:
            compose("config", list(overrides))
        except Exception as e:  # noqa: BLE001 - the wording is under test
            return one_line(e)
        raise AssertionError(f"{overrides} accepted")

    unknown = message("train.epoch=3")
    assert "train.epoch" in unknown and "allowed keys: epochs, optimizer" in unknown
    assert "+train.epoch" not in unknown  # Hydra's advice would add the typo
    wrong_type = message("train.lr=fast")
    assert "train.lr=fast" in wrong_type and "Float" in wrong_type
    option = message("variant=gal")
    assert "variant/gal" in option and "keras_impl2, locked" in option
    assert "search path" not in option
    for text in (unknown, wrong_type, option):
        assert "\n" not in text
