"""Presets compose into valid specs; lr schedule and config hash (rejections: test_bad_inputs)."""

from __future__ import annotations

import dataclasses
import hashlib
import os

import pytest
from omegaconf import OmegaConf

from experiments import config as C
from experiments import plan as P
from experiments.plan import make as make_plan
from frameworks import variants
from frameworks.compute import Compute
from frameworks.spec import Variant
from tests.conftest import REPO, compose_cfg


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


# Computed before the rules moved into frameworks/rules.py (#28.1, .2): a change of the schema,
# the hash's key lists or the spec must leave every logged run's hash, param names and
# config.yaml as they were, or older runs would stop resuming and split arms in the report.
PINNED_HASHES = {
    (): "842361d1879af487",
    ("variant=naive",): "fd6b4675a5d3e7ff",
    ("variant=keras_impl0", "framework=keras", "task=ptb", "dropout.granularity=batch"):
        "acdef29b8970b325",
    ("variant=keras3_builtin", "framework=keras", "dropout.output_mode=naive"):
        "39625e7a4466f1da",
    ("variant=torch_builtin", "task=ptb"): "335fb1632bd5a52c",
    ("variant=semeniuta", "dropout.per_step=true"): "414332c525d54b42",
    ("variant=zoneout", "model.cell=gru"): "b74db62014eb35e0",
    ("variant=zoneout", "dropout.zoneout_cell=0.2"): "d6cdc96220143f55",
    ("variant=weightdrop_variational", "dropout.eval_active=true", "task=imdb"):
        "aaf2063389057aa0",
    ("preset=part3_imdb_torch_weightdrop", "seed=3", "train.patience=5"): "2f1987eb809c5e27",
    ("preset=part3_imdb_keras_variational", "framework.keras_loop=cpp"): "4137dcd7986db5c0",
    ("preset=ptb_awd",): "3a1ad9d3a7ad3caa",
    ("preset=ptb_zaremba_small", "framework.torch_loop=eager", "train.threads=2"):
        "a95382c14c59c4fc",
    ("model.init=keras", "train.mc_every=0", "train.select_on=log_loss"): "42b80727d1d50a6b",
}
PINNED_YAML = {(): "dff91d26498df54e", ("variant=zoneout", "model.cell=gru"): "6c6031d7ae080678",
               ("preset=ptb_awd",): "62a248db1cfb3405"}
PINNED_PARAMS = "d506a2a0db98748d"  # sha256 of the default config's sorted param names


def _short_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_hashes_param_names_and_config_yaml_of_logged_runs_are_unchanged():
    for overrides, expected in PINNED_HASHES.items():
        cfg = compose_cfg(list(overrides))
        assert C.config_hash(cfg) == expected, overrides
        assert make_plan(cfg).config_hash == expected, overrides
    for overrides, expected in PINNED_YAML.items():
        assert _short_sha(OmegaConf.to_yaml(compose_cfg(list(overrides)), resolve=True)) == \
            expected, overrides
    params = sorted(C.flatten(compose_cfg([])))
    assert len(params) == 54 and _short_sha("\n".join(params)) == PINNED_PARAMS, params


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


def test_the_plan_reads_hydras_runtime_and_the_sweeps_handover_once():
    """The preset, the overrides, what the sweep's launching process handed over (parent runs,
    sweep id, parallel jobs, the axes its jobs differ in) and SLURM's ids arrive in the plan;
    nothing after `plan.make` reads them."""
    cfg = compose_cfg(["variant=semeniuta", "dropout.per_step=true", "seed=2"])
    environ = {"RDS_PARENT_RUNS": '{"rt": "p123"}', "RDS_SWEEP_ID": "s-1",
               "RDS_PARALLEL_JOBS": "4", "RDS_SWEEP_AXES": '["train.lr"]',
               "SLURM_JOB_ID": "77", "MLFLOW_TRACKING_URI": "sqlite:////tmp/elsewhere.db"}
    hydra = P.Invocation("some_preset", ("train.lr=0.5", "dropout.per_step=true"))
    tk = make_plan(cfg, hydra, environ).tracking
    assert (tk.parent_run_id, tk.sweep_id, tk.preset, dict(tk.slurm), tk.uri) == \
        ("p123", "s-1", "some_preset", {"slurm_job_id": "77"}, "sqlite:////tmp/elsewhere.db")
    assert tk.run_name == "torch/semeniuta/rt/s2/some_preset/per_step=true/lr=0.5"
    assert make_plan(cfg, hydra, environ).threads == max(1, (os.cpu_count() or 1) // 4)
    assert make_plan(cfg, hydra, {**environ, "SLURM_CPUS_PER_TASK": "3"}).threads == 3
    alone = make_plan(cfg, P.Invocation(), {})  # a run outside any sweep and Hydra app
    assert (alone.tracking.parent_run_id, alone.tracking.sweep_id, alone.tracking.preset) == \
        (None, None, None)
    assert alone.tracking.run_name == "torch/semeniuta/rt/s2"  # no overrides: the plain name
    own = compose_cfg(["tracking.parent_run_id=mine", "train.threads=2"])
    plan = make_plan(own, P.Invocation(), environ)
    assert (plan.tracking.parent_run_id, plan.threads) == ("mine", 2)


def test_only_the_plan_reads_the_runtime_of_a_run():
    """HydraConfig, the sweep's handover and SLURM's variables are read by plan.make; the entry
    point and the sweep callback read Hydra's runtime only for the job's own bookkeeping (its
    result file, whether it runs in a sweep), and the callback its own handover."""
    readers = {"HydraConfig": {"plan.py", "sweep.py", "train.py"},
               "received(": {"launch.py", "plan.py", "sweep.py"},
               "SLURM_CPUS_PER_TASK": {"plan.py"}}
    for needle, allowed in readers.items():
        found = {p.name for p in (REPO / "experiments").glob("*.py") if needle in p.read_text()}
        assert found <= allowed, (needle, found - allowed)
    for module in ("run.py", "weights.py", "tracking.py", "tracking_store.py"):
        assert "os.environ[" not in (REPO / "experiments" / module).read_text(), module
        assert "os.environ.get" not in (REPO / "experiments" / module).read_text(), module


def test_the_dropout_schema_has_a_key_per_rate_and_knob_of_the_registry_in_its_order():
    """A rate is added to frameworks/variants.py RATES and written out in DropoutConfig (Hydra
    refuses a key its schema lacks); ModelSpec takes every rate as one mapping."""
    keys = [f.name for f in dataclasses.fields(C.DropoutConfig)]
    assert keys == ["variant", *variants.RATES, *variants.KNOBS]
    cfg = compose_cfg(["variant=zoneout", "dropout.zoneout_hidden=0.2"])
    spec = make_plan(cfg).spec(10, 2)
    assert dict(spec.rates) == {r: cfg.dropout[r] for r in variants.RATES}
    assert spec.rates["zoneout_hidden"] == spec.zoneout_hidden_dropout == 0.2


def test_each_framework_takes_its_own_compute_switch_outside_the_hash():
    """framework.keras_loop reaches the Keras backend and, like torch_loop, leaves the hash
    alone (it changes the numbers by float rounding only,
    tests/frameworks/keras_backend/test_native_loop.py); either switch given to the other
    framework is refused before anything runs."""
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
