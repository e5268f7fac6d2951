"""A study's tuned rate (`${tuned:<stage>}`, experiments/tuned.py): stage 2's config reads the
rate stage 1 chose on validation from a real MLflow store, by the declared rule (lowest mean
validation log-loss at each run's selected epoch, a tie to the lower rate), and is refused in
one line until a launch of stage 1 has finished."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from experiments import config as C
from experiments import tracking as T
from experiments.run import execute
from experiments.tuned import choose
from tests.conftest import CPU_SLICE, REPO, compose_cfg
from tests.conftest import log_tuning_stage as stage_one

ARM = "preset=imdb_study_torch_weightdrop_column"


def test_stage_two_reads_the_rate_with_the_lowest_mean_validation_loss(store):
    stage_one(store, [
        # column: 0.1 -> (0.40 + 0.36) / 2 = 0.38 at the selected epochs; 0.25 -> 0.35; 0.5 ->
        # 0.37 (its last epochs are lower, but not at the epochs each run selected)
        ("weightdrop_column", 0.1, [0.5, 0.40], 2), ("weightdrop_column", 0.1, [0.36, 0.2], 1),
        ("weightdrop_column", 0.25, [0.34, 0.1], 1), ("weightdrop_column", 0.25, [0.5, 0.36], 2),
        ("weightdrop_column", 0.5, [0.37, 0.01], 1), ("weightdrop_column", 0.5, [0.37, 0.01], 1),
        # another form's runs play no part in this one's rate
        ("weightdrop", 0.5, [0.01], 1), ("weightdrop", 0.1, [0.9], 1)])
    cfg = compose_cfg([ARM, f"tracking.uri={store}"])
    assert cfg.dropout.weight == 0.25
    assert compose_cfg(["preset=imdb_study_torch_weightdrop", f"tracking.uri={store}"]) \
        .dropout.weight == 0.5
    # the chosen value is in the config hash: it is what the run ran at
    given = compose_cfg([ARM, f"tracking.uri={store}", "dropout.weight=0.25"])
    assert C.config_hash(cfg) == C.config_hash(given)
    assert C.config_hash(cfg) != C.config_hash(
        compose_cfg([ARM, f"tracking.uri={store}", "dropout.weight=0.1"]))


def test_a_tie_goes_to_the_lower_rate():
    assert choose({0.5: [0.3, 0.4], 0.1: [0.35, 0.35], 0.25: [0.5]}) == 0.1
    assert choose({0.25: [0.2], 0.1: [0.3]}) == 0.25


def test_stage_two_is_refused_in_one_line_until_stage_one_has_finished(store, tmp_path):
    with pytest.raises(Exception, match=r"dropout\.weight=\$\{tuned:imdb_study_tune\}: the store "
                                        r".* does not exist; run stage `make sweep "
                                        r"PRESET=imdb_study_tune` first"):
        _ = compose_cfg([ARM, f"tracking.uri=sqlite:///{tmp_path / 'none.db'}"]).dropout.weight
    other = f"sqlite:///{tmp_path / 'other.db'}"
    stage_one(other, [("weightdrop", 0.1, [0.4], 1)])
    with pytest.raises(Exception, match="sweep imdb_study_tune has no completed run of variant "
                                        "weightdrop_column"):
        _ = compose_cfg([ARM, f"tracking.uri={other}"]).dropout.weight
    stage_one(store, [("weightdrop_column", 0.1, [0.4], 1)], status="KILLED")
    with pytest.raises(Exception, match=r"no launch of sweep imdb_study_tune has finished .*"
                                        r"\(experiment imdb\); run stage"):
        _ = compose_cfg([ARM, f"tracking.uri={store}"]).dropout.weight
    # the completed runs of a killed launch count once a relaunch has finished (it skipped them)
    stage_one(store, [("weightdrop_column", 0.5, [0.5], 1)])
    assert compose_cfg([ARM, f"tracking.uri={store}"]).dropout.weight == 0.1


@pytest.mark.e2e
def test_a_run_that_took_a_tuned_rate_names_its_key_and_stage_in_the_store(store):
    stage_one(store, [("weightdrop_column", 0.1, [0.30], 1), ("weightdrop_column", 0.5, [0.35], 1)])
    client = MlflowClient(store)
    stage_two = client.get_run(execute(compose_cfg([ARM, *CPU_SLICE, f"tracking.uri={store}"]))
                               .run_id).data
    assert stage_two.params["dropout.weight"] == "0.1"
    assert stage_two.tags[T.TUNED_FROM] == "dropout.weight=imdb_study_tune"
    # a rate given outright (a stage-1 grid point) was tuned by nothing
    given = client.get_run(execute(compose_cfg(
        [ARM, *CPU_SLICE, f"tracking.uri={store}", "dropout.weight=0.25"])).run_id).data
    assert given.params["dropout.weight"] == "0.25"
    assert T.TUNED_FROM not in given.tags


@pytest.mark.e2e
def test_the_cli_says_it_once_in_one_line(tmp_path):
    missing = tmp_path / "none.db"
    done = subprocess.run([sys.executable, "-m", "experiments.train",
                           "preset=imdb_study_torch_weightdrop", f"tracking.uri=sqlite:///{missing}"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"refused: dropout.weight=${{tuned:imdb_study_tune}}: the store "
                     f"sqlite:///{missing} does not exist; run stage `make sweep "
                     f"PRESET=imdb_study_tune` first"]
    assert not missing.exists()  # nothing created by a refusal
