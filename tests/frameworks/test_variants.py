"""The variant registry (frameworks/variants.py): one entry per variant, read by spec validation,
mask plans, the run, the report and the sweep presets. The expected facts below are written
from docs/SEMANTICS.md (its rate, knob and mask tables), not copied from the registry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from experiments import sweep_jobs
from experiments.run import has_dropout
from experiments.sweep import sweep_overrides
from frameworks import variants
from frameworks.masks import mask_plan, naive_output, weight_mask_shape
from frameworks.rules import applies
from frameworks.spec import (
    FRAMEWORK_VARIANTS,
    ModelSpec,
    OutputMode,
    SpecError,
    TaskKind,
    Variant,
    rates_used_by,
)
from tests.conftest import CONF

NAMES = [v.value for v in Variant]

# docs/SEMANTICS.md, "Rates": the rate table (variant -> rates it uses).
GAL = {"embedding", "input", "recurrent", "output"}
WD = {"embedding", "input", "weight", "output"}
SEMANTICS_RATES = {
    "none": set(), "naive": {"embedding", "input", "output"},
    "keras_impl0": GAL, "keras_impl1": GAL, "keras_impl2": GAL,
    "weightdrop": WD, "weightdrop_variational": WD, "weightdrop_column": WD,
    "weightdrop_column_untied": WD, "locked": {"embedding", "input", "output"},
    "torch_builtin": {"embedding", "input"}, "keras3_builtin": GAL, "semeniuta": GAL,
    "zoneout": {"zoneout_cell", "zoneout_hidden"},
}
# docs/SEMANTICS.md, "Knobs": which variants allow each knob's non-default value.
SEMANTICS_KNOBS = {
    "granularity": {"keras_impl0", "keras_impl1", "keras_impl2", "locked", "semeniuta"},
    "output_mode": {"keras_impl0", "keras_impl1", "keras_impl2", "keras3_builtin", "semeniuta"},
    "eval_active": {"weightdrop_variational"},
    "per_step": {"semeniuta"},
}
NON_DEFAULT = {"granularity": "batch", "output_mode": "naive", "eval_active": True,
               "per_step": True}
# docs/SEMANTICS.md, "Mask naming contract": weight.{k} is (4H, H) / (4H, 1) / (1, H) / (4, 1, H).
H = 5
SEMANTICS_WEIGHT_MASKS = {
    "weightdrop": (4 * H, H), "weightdrop_variational": (4 * H, 1),
    "weightdrop_column": (1, H), "weightdrop_column_untied": (4, 1, H),
}


def spec(variant: str, layers: int = 2, kind: TaskKind = TaskKind.LANGUAGE_MODEL,
         **kw) -> ModelSpec:
    return ModelSpec(kind, 11, 11 if kind is TaskKind.LANGUAGE_MODEL else 2, 4, H, layers,
                     variant, **kw)


# --- one entry, one config file per variant ------------------------------------------------

def test_every_variant_has_exactly_one_registry_entry():
    assert [e.name for e in variants.ENTRIES] == NAMES  # same names, same order, no duplicate
    assert set(variants.REGISTRY) == set(NAMES)
    for name in NAMES:
        assert variants.entry(Variant(name)) is variants.entry(name)
        assert Variant[name.upper()] is Variant(name)  # the upper-case alias for code


@pytest.mark.parametrize("name", NAMES)
def test_every_variant_has_one_config_file_using_only_its_rates(name):
    cfg = yaml.safe_load((CONF / "variant" / f"{name}.yaml").read_text())
    assert cfg.pop("variant") == name
    set_rates = {k for k, v in cfg.items() if k in variants.RATES and v}
    assert set_rates <= variants.entry(name).rates, name


def test_the_variant_config_group_has_no_other_file():
    assert {p.stem for p in Path(CONF, "variant").glob("*.yaml")} == set(NAMES)


# --- the registry agrees with docs/SEMANTICS.md ---------------------------------------------

def test_rates_agree_with_the_semantics_table():
    for name in NAMES:
        assert variants.rates(name) == SEMANTICS_RATES[name], name
        assert rates_used_by(Variant(name)) == SEMANTICS_RATES[name], name


def test_knobs_agree_with_the_semantics_table():
    for knob, allowed in SEMANTICS_KNOBS.items():
        assert variants.allowing(knob) == allowed, knob


def test_weight_mask_shapes_agree_with_the_mask_contract():
    assert variants.in_group("weightdrop") == set(SEMANTICS_WEIGHT_MASKS)
    for name, shape in SEMANTICS_WEIGHT_MASKS.items():
        assert variants.weight_mask_shape(name, H) == shape
        assert weight_mask_shape(Variant(name), H) == shape
        plan = mask_plan(spec(name, weight_dropout=0.3), 3, 7, "train")
        assert [m.shape for m in plan if m.name.startswith("weight.")] == [shape, shape]
    with pytest.raises(ValueError, match="no weight-drop mask"):
        variants.weight_mask_shape("keras_impl2", H)


def test_input_and_recurrent_mask_shapes_agree_with_the_mask_contract():
    b, t, e = 3, 7, 4  # layer 0's input size is the embedding size
    expected_input = {"naive": (b, t, e), "locked": (b, 1, e), "weightdrop": (b, 1, e),
                      "keras_impl0": (4, b, e), "keras_impl1": (4, b, e), "keras_impl2": (b, e)}
    expected_recurrent = {"keras_impl0": (4, b, H), "keras_impl1": (4, b, H),
                          "keras_impl2": (b, H)}
    for name, shape in expected_input.items():
        used = {f"{r}_dropout": 0.3 for r in SEMANTICS_RATES[name] - {"embedding"}}
        plan = {m.name: m.shape for m in mask_plan(spec(name, 1, **used), b, t, "train")}
        assert plan["input.0"] == shape, name
        assert plan.get("recurrent.0") == expected_recurrent.get(name), name
    batch = {m.name: m.shape for m in mask_plan(
        spec("locked", 1, input_dropout=0.3, granularity="batch"), b, t, "train")}
    assert batch["input.0"] == (1, 1, e)


def test_library_variants_leave_their_masks_to_the_library():
    assert variants.in_group("library") == {"torch_builtin", "keras3_builtin"}
    kw = dict(embedding_dropout=0.1, input_dropout=0.3, recurrent_dropout=0.3,
              output_dropout=0.3)
    plan = mask_plan(spec("keras3_builtin", **kw), 3, 7, "train")
    assert [m.name for m in plan] == ["embedding"]
    assert not naive_output(spec("keras3_builtin", output_dropout=0.3,
                                 output_mode=OutputMode.NAIVE))


def test_output_dropout_per_step_only_for_naive_and_output_mode_naive():
    assert naive_output(spec("naive", output_dropout=0.3))
    assert not naive_output(spec("keras_impl2", output_dropout=0.3))
    assert naive_output(spec("keras_impl2", output_dropout=0.3, output_mode="naive"))
    assert not naive_output(spec("locked", output_dropout=0.3))


def test_frameworks_and_how_each_variant_runs():
    assert variants.for_framework("torch") == set(NAMES) - {"keras3_builtin"}
    assert variants.for_framework("keras") == set(NAMES) - {"torch_builtin"}
    assert {k: {v.value for v in vs} for k, vs in FRAMEWORK_VARIANTS.items()} == {
        f: variants.for_framework(f) for f in variants.FRAMEWORKS}
    # SEMANTICS: the Gal family and the cell hooks run a time loop, WeightDrop passes a masked
    # W_hh into the fused path, everything else is the library's fused layer.
    assert variants.running_as("step_loop") == {"keras_impl0", "keras_impl1", "keras_impl2",
                                                   "semeniuta", "zoneout"}
    assert variants.running_as("masked_weight") == set(SEMANTICS_WEIGHT_MASKS)
    assert variants.running_as("fused") == {"none", "naive", "locked", "torch_builtin",
                                            "keras3_builtin"}
    assert variants.in_group("gal") | variants.in_group("cell") == variants.running_as("step_loop")
    assert variants.in_group("locked") == set(SEMANTICS_WEIGHT_MASKS) | {"locked"}


# --- spec validation reads the registry ----------------------------------------------------

REFUSED_RATES = [(name, rate) for name in NAMES for rate in variants.RATES
                 if rate not in SEMANTICS_RATES[name]]


@pytest.mark.parametrize("name,rate", REFUSED_RATES, ids=[f"{n}-{r}" for n, r in REFUSED_RATES])
def test_a_rate_the_variant_does_not_use_is_refused_naming_the_allowed_ones(name, rate):
    with pytest.raises(SpecError) as e:
        spec(name, **{f"{rate}_dropout": 0.2})
    message = str(e.value)
    assert f"dropout.{rate}=0.2" in message and f"'{name}'" in message
    for allowed in SEMANTICS_RATES[name]:
        assert allowed in message


REFUSED_KNOBS = [(name, knob) for knob, allowed in SEMANTICS_KNOBS.items() for name in NAMES
                 if name not in allowed]


@pytest.mark.parametrize("name,knob", REFUSED_KNOBS, ids=[f"{n}-{k}" for n, k in REFUSED_KNOBS])
def test_a_knob_the_variant_does_not_allow_is_refused_naming_the_allowed_ones(name, knob):
    with pytest.raises(SpecError) as e:
        spec(name, **{knob: NON_DEFAULT[knob]})
    message = str(e.value)
    assert f"dropout.{knob}" in message
    for allowed in SEMANTICS_KNOBS[knob]:
        assert allowed in message


@pytest.mark.parametrize("name", NAMES)
def test_every_rate_and_knob_the_registry_allows_is_accepted(name):
    knobs = {k: NON_DEFAULT[k] for k in variants.entry(name).knobs}
    rates = {f"{r}_dropout": 0.2 for r in variants.rates(name)}
    s = spec(name, layers=2, **rates, **knobs)  # torch_builtin's input needs 2 layers
    assert has_dropout(s) == bool(rates)
    assert not has_dropout(spec(name))


def test_the_report_asks_the_registry_what_applies():
    for name in NAMES:
        for rate in variants.RATES:
            assert applies(f"dropout.{rate}", name) == (rate in SEMANTICS_RATES[name])
        for knob, allowed in SEMANTICS_KNOBS.items():
            assert applies(f"dropout.{knob}", name) == (name in allowed)
    assert applies("dropout.input", "not_a_variant")
    assert applies("train.lr", "none")


def test_an_inconsistent_entry_is_refused_when_written():
    base = variants.entry("locked")
    with pytest.raises(ValueError, match="a weight mask without the weight rate"):
        replace(base, weight_mask=(1, "H"))
    with pytest.raises(ValueError, match="groups"):
        replace(base, groups={"lockd"})
    with pytest.raises(ValueError, match="knobs"):
        replace(base, knobs={"granularity", "granulraity"})
    with pytest.raises(ValueError, match="a rate without its mask"):
        replace(base, output_mask=None)
    with pytest.raises(ValueError, match="unknown dimensions"):
        replace(base, input_mask=("B", "L", "D"))


# --- sweep presets: Hydra's glob over the variant group -------------------------------------

@pytest.fixture(scope="module")
def hydra_app():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield


@pytest.mark.parametrize("preset,excluded", [("cpu", {"torch_builtin"}), ("ptb_cpu", set())])
def test_the_preset_grid_is_the_registry_minus_its_stated_exclusions(hydra_app, preset,
                                                                     excluded):
    root = compose("config", [f"sweep={preset}"], return_hydra_config=True)
    overrides = [*sweep_overrides(root)[: len(root.hydra.sweeper.params)], f"sweep={preset}"]
    assert "glob(" in str(root.hydra.sweeper.params.variant)  # no hand-kept list
    jobs = sweep_jobs.compose_jobs("config", overrides)
    grid = {j.cfg.dropout.variant.value for j in jobs}
    assert grid == set(variants.names()) - excluded
    runs = {(j.cfg.framework.name.value, j.cfg.dropout.variant.value) for j in jobs if not j.skip}
    assert runs == {(f, v) for f in variants.FRAMEWORKS for v in variants.for_framework(f)
                    if v not in excluded}
    cells = {j.cfg.model.cell.value for j in jobs}
    assert len(jobs) == 2 * 3 * len(grid) * len(cells)  # framework x seed x variant x cell
    if preset == "cpu":  # the GRU runs every variant defined for it, as LSTM does
        gru = {j.cfg.dropout.variant.value for j in jobs if not j.skip
               and j.cfg.model.cell.value == "gru"}
        assert cells == {"lstm", "gru"}
        assert gru == {v for v in grid if "gru" in variants.entry(v).cells} - {"zoneout"}
