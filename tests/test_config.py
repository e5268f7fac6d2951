"""Presets compose into valid specs; lr schedule and config hash (rejections: test_bad_inputs)."""

from __future__ import annotations

from experiments import config as C
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
    assert [C.epoch_lr(cfg, e) for e in (1, 4, 5, 6)] == [35.0, 35.0, 17.5, 8.75]


def test_config_hash_ignores_tracking_and_threads_only():
    base = C.config_hash(compose_cfg([]))
    same = compose_cfg(["tracking.uri=sqlite:////tmp/x.db", "train.threads=3"])
    assert base == C.config_hash(same)
    assert base != C.config_hash(compose_cfg(["seed=1"]))
    assert base != C.config_hash(compose_cfg(["variant=naive"]))
