"""The one model specification both backends build from (see docs/SEMANTICS.md).

Everything here is framework-neutral: no torch, no tensorflow. A `ModelSpec` is validated once,
when it is made, so a bad combination of variant and knobs fails before any training starts.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from frameworks import rules, variants


def _variant_enum() -> type[enum.Enum]:
    names = variants.names()
    members = [(n, n) for n in names] + [(n.upper(), n) for n in names]
    cls = enum.Enum("Variant", members, type=str, module=__name__, qualname="Variant")
    cls.__doc__ = """Dropout variants; the names are shared by config, backends, tracking, report.

    Made from the registry (frameworks/variants.py), in its order. Member names equal their
    values (OmegaConf validates enum strings by member name, so `variant=keras_impl2` must be a
    name); the upper-case spellings are aliases for code."""
    return cls


Variant = _variant_enum()


class Cell(str, enum.Enum):
    """The recurrent cell (config key model.cell); its facts live in frameworks/variants.py."""

    lstm = "lstm"
    gru = "gru"
    LSTM = "lstm"
    GRU = "gru"


class Init(str, enum.Enum):
    """How the weights start (config key model.init; the schemes: frameworks/init.py)."""

    uniform = "uniform"
    keras = "keras"
    torch = "torch"
    UNIFORM = "uniform"
    KERAS = "keras"
    TORCH = "torch"


class TaskKind(str, enum.Enum):
    LANGUAGE_MODEL = "lm"
    CLASSIFIER = "classifier"


class Granularity(str, enum.Enum):
    """How often a variational mask is drawn: one per sequence, or one for the whole minibatch."""

    sample = "sample"
    batch = "batch"
    SAMPLE = "sample"
    BATCH = "batch"


class OutputMode(str, enum.Enum):
    """Dropout on the last LSTM output: Gal's variational mask, or Keras' plain `Dropout`."""

    variational = "variational"
    naive = "naive"
    VARIATIONAL = "variational"
    NAIVE = "naive"


def _variants(names: frozenset[str]) -> frozenset[Variant]:
    return frozenset(Variant(n) for n in names)


# Derived from the registry (frameworks/variants.py); kept for the modules that import them.
GAL_FAMILY = _variants(variants.in_group("gal"))
WEIGHTDROP_FAMILY = _variants(variants.in_group("weightdrop"))
LOCKED_FAMILY = _variants(variants.in_group("locked"))

# Every rate; a non-zero one a variant ignores is an error, not a no-op (frameworks/rules.py
# `inert`): a sweep must never log a rate that had no effect.
ALL_RATES = variants.RATES

# Variants whose masks can be drawn per sample or per minibatch; that allow output_mode=naive.
GRANULARITY_VARIANTS = _variants(variants.allowing("granularity"))
OUTPUT_MODE_VARIANTS = _variants(variants.allowing("output_mode"))
EVAL_ACTIVE_VARIANTS = _variants(variants.allowing("eval_active"))
PER_STEP_VARIANTS = _variants(variants.allowing("per_step"))


class SpecError(ValueError):
    """A model specification that cannot be built; the message names the key and allowed values."""


def rates_used_by(variant: Variant) -> frozenset[str]:
    return variants.rates(variant)


class Rates(Mapping[str, float]):
    """Every dropout rate of the registry (frameworks/variants.py RATES) by name, in its order;
    a rate not given is 0. Read-only, hashable and picklable, as the `ModelSpec` holding it."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, float] | None = None) -> None:
        given = dict(values or {})
        unknown = sorted(set(given) - set(variants.RATES))
        if unknown:
            raise SpecError(f"dropout rate {', '.join(unknown)} is not a rate; rates: "
                            f"{', '.join(variants.RATES)}")
        self._values = tuple(float(given.get(r, 0.0)) for r in variants.RATES)

    def __getitem__(self, name: str) -> float:
        if name not in variants.RATES:
            raise KeyError(name)
        return self._values[variants.RATES.index(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(variants.RATES)

    def __len__(self) -> int:
        return len(variants.RATES)

    def __hash__(self) -> int:
        return hash(self._values)

    def __reduce__(self) -> tuple[type[Rates], tuple[dict[str, float]]]:
        return Rates, (dict(self),)

    def __repr__(self) -> str:
        return f"Rates({ {r: p for r, p in self.items() if p} })"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build the matched model in either framework, validated once, when
    it is made (a bad combination of variant, rates and knobs fails before any training).

    `rates`, one per rate of the registry (frameworks/variants.py, so a new rate is a registry
    line only; a mapping given is read into `Rates`): `embedding` drops whole word types (rows
    of the embedding matrix); `input` is the dropout on each layer's input (embedding output,
    and between layers); `recurrent` masks h_{t-1} in the Gal family and the candidate update
    in Semeniuta's; `weight` is the WeightDrop rate on weight_hh; `output` drops the last
    layer's output before the decoder; `zoneout_cell` / `zoneout_hidden` keep a unit's previous
    c / h. docs/SEMANTICS.md has the equations. The spelling before the mapping,
    `<rate>_dropout=p` as a keyword and `spec.<rate>_dropout`, is still accepted.
    """

    task_kind: TaskKind
    vocab_size: int
    num_outputs: int
    embed_size: int
    hidden_size: int
    num_layers: int
    variant: Variant
    rates: Mapping[str, float] = Rates()  # every rate by name (a `Rates` once made)
    granularity: Granularity = Granularity.SAMPLE
    output_mode: OutputMode = OutputMode.VARIATIONAL
    eval_active: bool = False
    per_step: bool = False
    cell: Cell = Cell.LSTM
    tie_weights: bool = False
    init_scale: float = 0.1
    init: Init = Init.UNIFORM

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", Rates(self.rates))
        for name in ("task_kind", "variant", "granularity", "output_mode", "cell", "init"):
            _coerce_enum(self, name)
        self._validate()

    def __getattr__(self, name: str) -> float:
        """`spec.<rate>_dropout`, the spelling before `rates` (the Keras backend reads it)."""
        rate = name.removesuffix("_dropout")
        if rate != name and rate in variants.RATES:
            return self.rates[rate]
        raise AttributeError(f"'ModelSpec' object has no attribute {name!r}")

    @property
    def cell_info(self) -> variants.Cell:
        return variants.cell(self.cell.value)

    @property
    def gates(self) -> int:
        return self.cell_info.gates

    def rate(self, name: str) -> float:
        return self.rates[name]

    def _validate(self) -> None:
        for key in ("vocab_size", "num_outputs", "embed_size", "hidden_size", "num_layers"):
            if int(getattr(self, key)) < 1:
                raise SpecError(f"{key}={getattr(self, key)} must be >= 1")
        if self.init_scale <= 0:
            raise SpecError(f"init_scale={self.init_scale} must be > 0")
        entry = variants.entry(self.variant)
        if self.cell.value not in entry.cells:
            raise SpecError(
                f"model.cell={self.cell.value} is not defined for variant '{self.variant.value}'; "
                f"it has: {', '.join(sorted(entry.cells))}"
            )
        used = entry.rates
        for name in ALL_RATES:
            p = self.rate(name)
            if not 0.0 <= p < 1.0:
                raise SpecError(f"dropout.{name}={p} is out of range: a rate must be in [0, 1)")
            why = rules.inert(name, self.variant.value, self.cell.value) if p > 0 else ""
            if why == rules.VARIANT:
                allowed = ", ".join(sorted(used)) or "none (variant 'none' has no dropout)"
                raise SpecError(
                    f"dropout.{name}={p} has no effect for variant '{self.variant.value}'; "
                    f"rates it uses: {allowed}"
                )
            if why == rules.STATE:
                have = ", ".join(self.cell_info.state)
                raise SpecError(
                    f"dropout.{name}={p} acts on the state {variants.RATE_STATE[name]}, which "
                    f"model.cell={self.cell.value} does not have (its state: {have})"
                )
        for name in ALL_RATES:
            p = self.rate(name)
            if p > 0 and rules.inert(name, self.variant.value, self.cell.value,
                                     self.num_layers) == rules.LAYERS:
                raise SpecError(
                    f"dropout.{name}={p} has no effect for variant '{self.variant.value}' "
                    "on a 1-layer model: nn.LSTM's dropout acts only between layers "
                    "(use model.num_layers >= 2, or variant naive for dropout on the input)"
                )
        if self.granularity is Granularity.BATCH and self.variant not in GRANULARITY_VARIANTS:
            raise SpecError(
                f"dropout.granularity=batch is not supported by variant '{self.variant.value}'; "
                f"variants that allow it: {_names(GRANULARITY_VARIANTS)}"
            )
        if self.output_mode is OutputMode.NAIVE and self.variant not in OUTPUT_MODE_VARIANTS:
            raise SpecError(
                f"dropout.output_mode=naive is only for variants {_names(OUTPUT_MODE_VARIANTS)}; "
                f"'{self.variant.value}' already defines its output dropout"
            )
        if self.eval_active and self.variant not in EVAL_ACTIVE_VARIANTS:
            raise SpecError(
                "dropout.eval_active=true reproduces awd-lstm's always-on row mask and is only "
                f"allowed for variants {_names(EVAL_ACTIVE_VARIANTS)}"
            )
        if self.per_step and self.variant not in PER_STEP_VARIANTS:
            raise SpecError(
                "dropout.per_step=true (a fresh candidate mask per time step) is only for "
                f"variants {_names(PER_STEP_VARIANTS)}"
            )
        if self.tie_weights:
            if self.task_kind is not TaskKind.LANGUAGE_MODEL:
                raise SpecError("model.tie_weights=true needs the language-model task (ptb)")
            if self.embed_size != self.hidden_size:
                raise SpecError(
                    f"model.tie_weights=true needs embed_size == hidden_size "
                    f"(got {self.embed_size} and {self.hidden_size})"
                )


def _rate_keywords(init: Callable[..., None]) -> Callable[..., None]:
    """`ModelSpec(..., input_dropout=0.3)`, the spelling before `rates`, still accepted (some
    backends' tests use it): such keywords join `rates`, and win over it."""

    @functools.wraps(init)
    def __init__(self: ModelSpec, *args: object, **kwargs: object) -> None:
        spelled = {key.removesuffix("_dropout"): kwargs.pop(key) for key in list(kwargs)
                   if key.endswith("_dropout")}
        if spelled:
            kwargs["rates"] = {**dict(kwargs.get("rates") or {}), **spelled}
        init(self, *args, **kwargs)

    return __init__


ModelSpec.__init__ = _rate_keywords(ModelSpec.__init__)  # type: ignore[method-assign]


def _coerce_enum(spec: ModelSpec, name: str) -> None:
    enum_type = {
        "task_kind": TaskKind,
        "variant": Variant,
        "granularity": Granularity,
        "output_mode": OutputMode,
        "cell": Cell,
        "init": Init,
    }[name]
    value = getattr(spec, name)
    try:
        object.__setattr__(spec, name, enum_type(getattr(value, "value", value)))
    except ValueError:
        allowed = ", ".join(e.value for e in enum_type)
        raise SpecError(f"{name}={value!r} is not one of: {allowed}") from None


def _names(variants: frozenset[Variant]) -> str:
    return ", ".join(sorted(v.value for v in variants))


class Batch(NamedTuple):
    """One minibatch, batch-first. LM: x, y are (B, T) token ids, y = x shifted by one.
    Classifier: x is (B, T) pre-padded token ids (0 = padding), y is (B,) class ids."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True)
class OptimSpec:
    """Optimiser settings; the learning rate of each epoch is passed to `train_epoch`."""

    name: str = "sgd"  # sgd | adam
    clip_norm: float = 0.0  # global gradient-norm clip; 0 disables
    weight_decay: float = 0.0  # L2 added to the loss gradient (coupled, as SGD weight decay)


# The library reference rows exist in one framework only; everything else is in both.
FRAMEWORK_VARIANTS: dict[str, frozenset[Variant]] = {
    f: _variants(variants.for_framework(f)) for f in variants.FRAMEWORKS
}


def check_framework_variant(framework: str, variant: Variant | str) -> None:
    """Reject a framework/variant pair before anything is imported or trained."""
    if framework not in FRAMEWORK_VARIANTS:
        raise SpecError(
            f"framework={framework!r} is unknown; allowed: {', '.join(FRAMEWORK_VARIANTS)}"
        )
    variant = Variant(getattr(variant, "value", variant))
    if variant not in FRAMEWORK_VARIANTS[framework]:
        raise SpecError(
            f"variant '{variant.value}' is not implemented by framework '{framework}'; "
            f"it has: {_names(FRAMEWORK_VARIANTS[framework])}"
        )
