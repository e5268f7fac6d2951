"""Bad configuration is refused before training, with a message naming the key."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf.errors import OmegaConfBaseException

from experiments import config as C
from frameworks.spec import SpecError, Variant
from tests.conftest import compose_cfg

COMPOSE_ERRORS = (ConfigCompositionException, HydraException, OmegaConfBaseException)


@pytest.mark.parametrize(
    "override,needle",
    [
        ("dropout.inptu=0.3", "inptu"),
        ("task.batch_size=abc", "batch_size"),
        ("task=sst", "Available options in 'task'"),
        ("variant=bogus", "Available options in 'variant'"),
        ("framework=tf", "Available options in 'framework'"),
        ("dropout.variant=bogus", "dropout.variant"),
        ("train.optimizer=rmsprop", "optimizer"),
    ],
)
def test_composition_rejects_with_key_name(override, needle):
    with pytest.raises(COMPOSE_ERRORS) as err:
        compose_cfg([override])
    text = str(err.value) + str(getattr(err.value, "__cause__", ""))
    assert needle in text


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["variant=naive", "dropout.input=1.0"], "dropout.input=1.0 is out of range"),
        (["variant=naive", "dropout.output=-0.1"], "dropout.output=-0.1 is out of range"),
        (["variant=naive", "dropout.recurrent=0.2"], "rates it uses: embedding, input, output"),
        (["variant=weightdrop", "dropout.granularity=batch"], "variants that allow it"),
        (["variant=naive", "dropout.eval_active=true"], "weightdrop_variational"),
        (["variant=none", "dropout.embedding=0.1"], "has no effect for variant 'none'"),
    ],
)
def test_spec_rejects_unsupported_knobs(overrides, needle):
    cfg = compose_cfg(overrides)
    with pytest.raises(SpecError, match=needle):
        C.to_spec(cfg, vocab_size=100, num_outputs=2)


@pytest.mark.parametrize(
    "overrides,needle",
    [
        (["task.maxlen=0"], "task.maxlen=0 must be >= 1"),
        (["task=ptb", "task.bptt=0"], "task.bptt=0 must be >= 1"),
        (["train.mc_samples=0"], "train.mc_samples=0 must be >= 1"),
        (["train.lr_decay=1.5"], "lr_decay"),
        (["framework=keras", "variant=torch_builtin"], "not implemented by framework 'keras'"),
        (["framework=torch", "variant=keras3_builtin"], "not implemented by framework 'torch'"),
    ],
)
def test_validate_rejects_bad_values(overrides, needle):
    with pytest.raises(SpecError, match=needle):
        C.validate(compose_cfg(overrides))


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
    assert (ptb.train.optimizer.value, ptb.train.lr, ptb.task.bptt) == ("sgd", 1.0, 35)
    assert compose_cfg(["task=ptb", "train.lr=0.5"]).train.lr == 0.5  # CLI wins over presets


def test_lr_schedule_is_zaremba_small():
    cfg = compose_cfg(["task=ptb"])
    assert [C.epoch_lr(cfg, e) for e in (1, 4, 5, 6)] == [1.0, 1.0, 0.5, 0.25]


def test_config_hash_ignores_tracking_and_threads_only():
    base = C.config_hash(compose_cfg([]))
    same = compose_cfg(["tracking.uri=sqlite:////tmp/x.db", "train.threads=3"])
    assert base == C.config_hash(same)
    assert base != C.config_hash(compose_cfg(["seed=1"]))
    assert base != C.config_hash(compose_cfg(["variant=naive"]))
