"""The rules more than one layer reads (frameworks/rules.py): cheap to import, and what they
say of a dropout key, a framework's loops and the config hash's key lists."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from frameworks import rules, variants
from tests.conftest import REPO, compose_cfg

HEAVY = ("hydra", "omegaconf", "torch", "tensorflow", "keras", "mlflow", "pandas")


def test_importing_the_rules_imports_no_framework_and_no_config_library():
    """The report and the sweep's checks import it: it must cost them nothing."""
    probe = ("import sys, frameworks.rules; "
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_why_a_dropout_key_has_no_effect():
    assert rules.inert("dropout.recurrent", "locked") == rules.VARIANT
    assert rules.inert("granularity", "weightdrop") == rules.VARIANT
    assert rules.inert("dropout.zoneout_cell", "zoneout", "gru") == rules.STATE
    assert rules.inert("dropout.zoneout_cell", "zoneout", "lstm") == ""
    # nn.LSTM's dropout acts between stacked layers only
    assert rules.inert("dropout.input", "torch_builtin", "lstm", 1) == rules.LAYERS
    assert rules.applies("dropout.input", "torch_builtin", "lstm", 2)
    assert rules.applies("dropout.input", "torch_builtin")  # layers unknown: the report
    # what the report meets in older stores: unknown variants, cells and keys have an effect
    assert rules.applies("dropout.input", "not_a_variant", "not_a_cell", 1)
    assert rules.applies("train.lr", "none")


def test_every_key_the_hash_lists_is_a_config_key():
    cfg = compose_cfg([])
    # `published`: a section older configs carried (their runs' params still have it)
    for key in (*(k for k in rules.NON_SEMANTIC if k != "published"), *rules.ADDED_LATER):
        assert OmegaConf.select(cfg, key, default="missing") != "missing", key
    rates = {k.removeprefix("dropout.") for k in rules.ADDED_LATER if k.startswith("dropout.")}
    assert set(rules.FIRST_RATES) | rates >= set(variants.RATES)


@pytest.mark.parametrize("framework", list(rules.LOOPS))
def test_each_backend_offers_exactly_the_loops_the_config_names(framework):
    """framework.<fw>_loop takes its values from rules.LOOPS; the backend's paths must be
    these, in order (fastest first)."""
    if framework == "torch":
        pytest.importorskip("torch")
        from frameworks.torch_backend import compute
    else:
        pytest.importorskip("keras")
        from frameworks.keras_backend import compute
    assert rules.LOOPS[framework] == compute.LOOPS
