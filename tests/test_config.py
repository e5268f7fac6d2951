"""Presets compose into valid specs; lr schedule and config hash (rejections: test_bad_inputs)."""

from __future__ import annotations

import dataclasses

import pytest

from experiments import config as C
from experiments.plan import make as make_plan
from frameworks.compute import Compute
from frameworks.spec import Variant
from tests.conftest import compose_cfg


def test_every_variant_preset_builds_a_valid_spec_for_its_frameworks():
    for variant in Variant:
        frameworks = ["keras"] if variant is Variant.keras3_builtin else ["torch"]
        for fw in frameworks:
            cfg = compose_cfg([f"variant={variant.value}", f"framework={fw}", "task=ptb"])
            C.validate(cfg)
            spec = C.to_spec(cfg, vocab_size=100, num_outputs=100)
            assert spec.variant is variant and spec.num_layers == 2


def test_task_presets_set_their_training_defaults():
    ptb = compose_cfg(["task=ptb"])
    assert (ptb.train.optimizer.value, ptb.train.lr, ptb.task.bptt) == ("sgd", 35.0, 35)
    assert compose_cfg(["task=ptb", "train.lr=0.5"]).train.lr == 0.5  # CLI wins over presets


def test_lr_schedule_is_zaremba_small():
    cfg = compose_cfg(["task=ptb"])
    schedule = make_plan(cfg).schedule
    assert [schedule.lr_at(e) for e in (1, 4, 5, 6)] == [35.0, 35.0, 17.5, 8.75]


def test_config_hash_ignores_tracking_and_threads_only():
    base = C.config_hash(compose_cfg([]))
    same = compose_cfg(["tracking.uri=sqlite:////tmp/x.db", "train.threads=3"])
    assert base == C.config_hash(same)
    assert base != C.config_hash(compose_cfg(["seed=1"]))
    assert base != C.config_hash(compose_cfg(["variant=naive"]))


def test_keys_added_later_keep_the_hash_of_runs_logged_before_them():
    """Resume-by-hash must find runs logged before model.cell, dropout.per_step and the rates the
    registry gained later existed: these hashes were computed before those keys were added."""
    logged_before = {
        (): "842361d1879af487",
        ("preset=part3_imdb_torch_weightdrop", "seed=3", "train.patience=5"): "2f1987eb809c5e27",
        ("variant=keras_impl0", "framework=keras", "task=ptb", "dropout.granularity=batch"):
            "acdef29b8970b325",
    }
    for overrides, expected in logged_before.items():
        assert C.config_hash(compose_cfg(list(overrides))) == expected, overrides
    assert C.config_hash(compose_cfg(["model.cell=gru"])) != logged_before[()]
    assert C.config_hash(compose_cfg(["variant=semeniuta", "dropout.per_step=true"])) != \
        C.config_hash(compose_cfg(["variant=semeniuta"]))


def test_the_run_plan_is_frozen_and_read_once():
    """Everything below experiments/run.py reads the plan, typed and immutable, not the config."""
    cfg = compose_cfg(["variant=keras_impl2", "train.lr=0.5", "seed=3", "task=ptb"])
    plan = make_plan(cfg)
    assert (plan.variant, plan.seed, plan.schedule.lr, plan.data.bptt) == \
        ("keras_impl2", 3, 0.5, 35)
    assert plan.config_hash == C.config_hash(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.seed = 4
    cfg.train.lr = 9.0  # a later change of the config does not reach the plan
    assert plan.schedule.lr == 0.5 and plan.spec(100, 100).variant.value == "keras_impl2"


def test_each_framework_takes_its_own_compute_switch_outside_the_hash():
    """framework.keras_loop reaches the Keras backend and, like torch_loop, leaves the hash
    alone (it changes the numbers by float rounding only, tests/test_native_loop.py); either
    switch given to the other framework is refused before anything runs."""
    keras = ["framework=keras", "variant=keras_impl0"]
    assert C.compute_options(compose_cfg([*keras, "framework.keras_loop=cpp"])) == Compute("cpp")
    assert C.compute_options(compose_cfg(keras)) == Compute("auto")  # the default: the fastest
    assert C.compute_options(compose_cfg([])) == Compute("auto", False)
    assert C.config_hash(compose_cfg([*keras, "framework.keras_loop=cpp"])) == \
        C.config_hash(compose_cfg(keras))
    with pytest.raises(C.SpecError, match="framework.keras_loop=cpp has no effect with "
                                          "framework=torch; it is a keras switch"):
        C.compute_options(compose_cfg(["framework.keras_loop=cpp"]))
    with pytest.raises(C.SpecError, match="framework.torch_loop=cpp has no effect with "
                                          "framework=keras; it is a torch switch"):
        C.compute_options(compose_cfg([*keras, "framework.torch_loop=cpp"]))
    with pytest.raises(C.SpecError, match="framework.torch_loop=cpp with framework.torch_compile"
                                          "=true: torch.compile runs the autograd loop; "
                                          "allowed: auto, eager"):
        C.compute_options(compose_cfg(["framework.torch_loop=cpp", "framework.torch_compile=true"]))
