"""The one model specification both backends build from (see docs/SEMANTICS.md).

Everything here is framework-neutral: no torch, no tensorflow. A `ModelSpec` is validated once,
when it is made, so a bad combination of variant and knobs fails before any training starts.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, make_dataclass
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

# Which rate knobs each variant uses. A non-zero rate a variant ignores is an error, not a no-op:
# a sweep must never log a rate that had no effect.
_RATES: dict[Variant, frozenset[str]] = {Variant(e.name): e.rates for e in variants.ENTRIES}
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


class _SpecMethods:
    """Everything needed to build the matched model in either framework (see `ModelSpec`).

    Rates, one field `<rate>_dropout` per rate of the registry (frameworks/variants.py, so a
    new rate is a registry entry only): `embedding` drops whole word types (rows of the
    embedding matrix); `input` is the dropout on each layer's input (embedding output, and
    between layers); `recurrent` masks h_{t-1} in the Gal family and the candidate update in
    Semeniuta's; `weight` is the WeightDrop rate on weight_hh; `output` drops the last layer's
    output before the decoder. docs/SEMANTICS.md has the equations.
    """

    def __post_init__(self) -> None:
        for name in ("task_kind", "variant", "granularity", "output_mode", "cell", "init"):
            _coerce_enum(self, name)
        self._validate()

    @property
    def cell_info(self) -> variants.Cell:
        return variants.cell(self.cell.value)

    @property
    def gates(self) -> int:
        return self.cell_info.gates

    def rate(self, name: str) -> float:
        return float(getattr(self, f"{name}_dropout"))

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

    def as_dict(self) -> dict[str, object]:
        return {k: (v.value if isinstance(v, enum.Enum) else v)
                for k, v in asdict(self).items()}  # type: ignore[call-overload]


# The fields in order: the positional ones, then one float per registry rate, then the knobs.
_FIELDS = [
    ("task_kind", TaskKind), ("vocab_size", int), ("num_outputs", int), ("embed_size", int),
    ("hidden_size", int), ("num_layers", int), ("variant", Variant),
    *[(f"{r}_dropout", float, field(default=0.0)) for r in variants.RATES],
    ("granularity", Granularity, field(default=Granularity.SAMPLE)),
    ("output_mode", OutputMode, field(default=OutputMode.VARIATIONAL)),
    ("eval_active", bool, field(default=False)),
    ("per_step", bool, field(default=False)),
    ("cell", Cell, field(default=Cell.LSTM)),
    ("tie_weights", bool, field(default=False)),
    ("init_scale", float, field(default=0.1)),
    ("init", Init, field(default=Init.UNIFORM)),
]
ModelSpec = make_dataclass("ModelSpec", _FIELDS, bases=(_SpecMethods,), frozen=True)
ModelSpec.__module__ = __name__  # pickling and reprs find it here
ModelSpec.__doc__ = _SpecMethods.__doc__


def _coerce_enum(spec: _SpecMethods, name: str) -> None:
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
