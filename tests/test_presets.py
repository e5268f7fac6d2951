"""Every published-configuration preset starts and runs a few steps on CPU, so none can rot
(the full runs need a GPU; their settings are checked against REFERENCES.md here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from experiments.run import execute
from tests.conftest import CONF, compose_cfg

pytestmark = pytest.mark.e2e
PRESETS = sorted(p.stem for p in Path(CONF, "preset").glob("*.yaml"))
CPU_SLICE = ["train.device=cpu", "train.epochs=1", "train.mc_samples=2", "task.batch_size=4",
             "task.bptt=5", "task.train_limit=41", "task.eval_limit=21", "train.threads=2"]


def test_all_reproduction_presets_exist():
    assert set(PRESETS) >= {"ptb_zaremba_small", "ptb_zaremba_medium", "ptb_zaremba_large",
                            "ptb_gal_medium", "ptb_gal_large", "ptb_awd"}


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_a_few_steps_on_cpu(preset, store):
    cfg = compose_cfg([f"preset={preset}", *CPU_SLICE, f"tracking.uri={store}"])
    result = execute(cfg)
    run = MlflowClient(store).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_perplexity_std"] > 1


def test_zaremba_small_matches_the_paper_with_the_summed_loss_equivalence():
    cfg = compose_cfg(["preset=ptb_zaremba_small"])
    m, t, tr = cfg.model, cfg.task, cfg.train
    shape = (m.num_layers, m.hidden_size, m.init_scale, t.bptt, t.batch_size)
    assert shape == (2, 200, 0.1, 20, 20)
    schedule = (tr.epochs, tr.lr_decay, tr.decay_start, cfg.dropout.variant.value)
    assert schedule == (13, 0.5, 4, "none")
    # lr 1 and clip 5 on the loss summed over 20 steps == lr 20 and clip 0.25 on the mean
    assert tr.lr == 1.0 * t.bptt and tr.clip_norm == pytest.approx(5.0 / t.bptt)


def test_gal_large_rates_are_the_authors():
    d = compose_cfg(["preset=ptb_gal_large"]).dropout
    assert (d.variant.value, d.embedding, d.input, d.recurrent, d.output) == (
        "keras_impl2", 0.3, 0.5, 0.3, 0.5)
