"""The dropout variants, one declarative entry each: the one place a variant is defined.

Every fact the suite needs about a variant *before* a framework runs it lives in its `Entry`:
the rates it uses, the knobs it allows, its groups, the shapes of the masks the suite draws for
it, which frameworks implement it and how it runs. `frameworks.spec` derives `Variant`, the
validation rules and the family sets from here, `frameworks.masks` the mask shapes, and
`experiments.run`, `reports.compare` and the tests ask the query functions below. What a variant
computes is described in docs/SEMANTICS.md; how a backend computes it stays in the backend.

Framework-neutral and dependency-free: no torch, no tensorflow, no other suite module.

Mask shape rules are tuples of dimensions, resolved by `resolve`: an int is a literal size;
"B" batch size, "Bm" the variational batch axis (B, or 1 with granularity=batch), "T" time
steps, "D" the layer's input size, "H" hidden size, "4H" four times the hidden size. All shapes
are in PyTorch orientation (weight_hh is (4H, H)); the Keras backend applies them transposed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

RATES = ("embedding", "input", "recurrent", "output", "weight")  # config keys dropout.<rate>
KNOBS = ("granularity", "output_mode", "eval_active")  # config keys dropout.<knob>
FRAMEWORKS = ("torch", "keras")
# gal: Gal-style variational masks on input and h_{t-1} (Keras implementation 0/1/2);
# weightdrop: DropConnect on weight_hh (AWD-LSTM's WeightDrop and its column forms);
# locked: variational (LockedDropout) masks on the layer inputs and the output;
# library: a library layer draws its own masks (only `embedding` goes through the sampler).
GROUPS = ("gal", "weightdrop", "locked", "library")
# fused: the library's own LSTM path (nn.LSTM / the fused Keras loop, or the stock library
# layer); masked_weight: a masked weight_hh passed into that fused path; step_loop: the suite's
# own per-step loop (masks inside the recurrence).
RUNS_AS = ("fused", "masked_weight", "step_loop")
DIMS = ("B", "Bm", "T", "D", "H", "4H")
# output dropout the suite draws: a fresh mask per time step (plain Dropout), or one mask per
# sequence constant over time (variational); None when there is none or a library draws it.
OUTPUT_MASKS = ("per_step", "variational")

RunsAs = Literal["fused", "masked_weight", "step_loop"]
Shape = tuple[int | str, ...]


@dataclass(frozen=True)
class Entry:
    """One variant. Collections may be given as any iterable; they are stored as frozensets."""

    name: str
    rates: frozenset[str]  # rates it uses; any other non-zero rate is refused
    runs_as: RunsAs
    knobs: frozenset[str] = frozenset()  # non-default knob values it allows
    groups: frozenset[str] = frozenset()
    frameworks: frozenset[str] = frozenset(FRAMEWORKS)
    input_mask: Shape | None = None  # input.k as drawn by the suite's sampler
    recurrent_mask: Shape | None = None  # recurrent.k (on h_{t-1} only)
    weight_mask: Shape | None = None  # weight.k, the DropConnect mask on weight_hh
    output_mask: str | None = None  # one of OUTPUT_MASKS, or None
    summary: str = ""

    def __post_init__(self) -> None:
        for name in ("rates", "knobs", "groups", "frameworks"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        _check_subset(self, "rates", self.rates, RATES)
        _check_subset(self, "knobs", self.knobs, KNOBS)
        _check_subset(self, "groups", self.groups, GROUPS)
        _check_subset(self, "frameworks", self.frameworks, FRAMEWORKS)
        if self.runs_as not in RUNS_AS:
            raise ValueError(f"variant {self.name!r}: runs_as={self.runs_as!r} not in {RUNS_AS}")
        if self.output_mask is not None and self.output_mask not in OUTPUT_MASKS:
            raise ValueError(f"variant {self.name!r}: output_mask not in {OUTPUT_MASKS}")
        masks = {"input": self.input_mask, "recurrent": self.recurrent_mask,
                 "weight": self.weight_mask, "output": self.output_mask}
        for rate, mask in masks.items():  # the suite draws a mask only for a rate it uses
            if mask is not None and rate not in self.rates:
                raise ValueError(f"variant {self.name!r}: a {rate} mask without the {rate} rate")
            if isinstance(mask, tuple):
                bad = [d for d in mask if not isinstance(d, int) and d not in DIMS]
                if bad:
                    raise ValueError(f"variant {self.name!r}: unknown dimensions {bad}")
        if "library" not in self.groups and any(
                masks[r] is None for r in self.rates - {"embedding"}):
            raise ValueError(f"variant {self.name!r}: a rate without its mask")

    def uses(self, key: str) -> bool:
        """Whether a dropout key (rate or knob, `dropout.` prefix optional) has an effect."""
        leaf = key.rsplit(".", 1)[-1]
        if leaf in RATES:
            return leaf in self.rates
        if leaf in KNOBS:
            return leaf in self.knobs
        return True


def _check_subset(entry: Entry, field: str, values: frozenset[str], allowed: tuple) -> None:
    if not values <= set(allowed):
        raise ValueError(f"variant {entry.name!r}: {field} {sorted(values - set(allowed))} "
                         f"not in {allowed}")


_GAL_RATES = ("embedding", "input", "recurrent", "output")
_WEIGHTDROP_RATES = ("embedding", "input", "weight", "output")
_GAL_KNOBS = ("granularity", "output_mode")


def _weightdrop(name: str, weight_mask: Shape, summary: str,
                knobs: Iterable[str] = ()) -> Entry:
    """The WeightDrop forms share everything but the weight mask (and eval_active)."""
    return Entry(name, _WEIGHTDROP_RATES, "masked_weight", knobs=knobs,
                 groups=("weightdrop", "locked"), input_mask=("B", 1, "D"),
                 weight_mask=weight_mask, output_mask="variational", summary=summary)


# In this order everywhere (enum order, tables, benchmarks).
ENTRIES: tuple[Entry, ...] = (
    Entry("none", (), "fused", summary="no dropout anywhere"),
    Entry("naive", ("embedding", "input", "output"), "fused",
          input_mask=("B", "T", "D"), output_mask="per_step",
          summary="Zaremba 2014: a fresh mask per time step on non-recurrent connections"),
    Entry("keras_impl0", _GAL_RATES, "step_loop", knobs=_GAL_KNOBS, groups=("gal",),
          input_mask=(4, "Bm", "D"), recurrent_mask=(4, "Bm", "H"), output_mask="variational",
          summary="Gal, untied per-gate masks, Keras 2.0 implementation=0 order"),
    Entry("keras_impl1", _GAL_RATES, "step_loop", knobs=_GAL_KNOBS, groups=("gal",),
          input_mask=(4, "Bm", "D"), recurrent_mask=(4, "Bm", "H"), output_mask="variational",
          summary="Gal, untied per-gate masks, Keras 2.0 implementation=1 order"),
    Entry("keras_impl2", _GAL_RATES, "step_loop", knobs=_GAL_KNOBS, groups=("gal",),
          input_mask=("Bm", "D"), recurrent_mask=("Bm", "H"), output_mask="variational",
          summary="Gal, one mask tied across the gates"),
    _weightdrop("weightdrop", ("4H", "H"), "AWD WeightDrop: elementwise DropConnect on W_hh"),
    _weightdrop("weightdrop_variational", ("4H", 1),
                "AWD WeightDrop(variational=True): rows of W_hh (gate units)",
                knobs=("eval_active",)),
    _weightdrop("weightdrop_column", (1, "H"), "columns of W_hh (units of h_{t-1})"),
    _weightdrop("weightdrop_column_untied", (4, 1, "H"),
                "columns of W_hh, one mask per gate row block"),
    Entry("locked", ("embedding", "input", "output"), "fused", knobs=("granularity",),
          groups=("locked",), input_mask=("Bm", 1, "D"), output_mask="variational",
          summary="awd LockedDropout on inputs and output"),
    Entry("torch_builtin", ("embedding", "input"), "fused", groups=("library",),
          frameworks=("torch",), summary="nn.LSTM(dropout=input): between stacked layers only"),
    Entry("keras3_builtin", _GAL_RATES, "fused", knobs=("output_mode",), groups=("library",),
          frameworks=("keras",), summary="stock keras.layers.LSTM(dropout, recurrent_dropout)"),
)
REGISTRY: dict[str, Entry] = {e.name: e for e in ENTRIES}
if len(REGISTRY) != len(ENTRIES):
    raise ValueError("two registry entries share a name")


def names() -> tuple[str, ...]:
    """Every variant name, in registry order."""
    return tuple(REGISTRY)


def entry(variant: object) -> Entry:
    """The entry of a variant given by name or by a `Variant` member."""
    name = str(getattr(variant, "value", variant))
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"variant {name!r} is not one of: {', '.join(REGISTRY)}") from None


def in_group(group: str) -> frozenset[str]:
    if group not in GROUPS:
        raise ValueError(f"group {group!r} is not one of: {', '.join(GROUPS)}")
    return frozenset(e.name for e in ENTRIES if group in e.groups)


def allowing(knob: str) -> frozenset[str]:
    """The variants that allow a knob's non-default value."""
    if knob not in KNOBS:
        raise ValueError(f"knob {knob!r} is not one of: {', '.join(KNOBS)}")
    return frozenset(e.name for e in ENTRIES if knob in e.knobs)


def for_framework(framework: str) -> frozenset[str]:
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework {framework!r} is not one of: {', '.join(FRAMEWORKS)}")
    return frozenset(e.name for e in ENTRIES if framework in e.frameworks)


def running_as(runs_as: str) -> frozenset[str]:
    return frozenset(e.name for e in ENTRIES if e.runs_as == runs_as)


def rates(variant: object) -> frozenset[str]:
    return entry(variant).rates


def uses(variant: object, key: str) -> bool:
    """Whether a dropout key (rate or knob) has an effect for a variant; unknown keys do."""
    return entry(variant).uses(key)


def resolve(rule: Shape, **dims: int) -> tuple[int, ...]:
    """A shape rule with its dimensions filled in, e.g. resolve(("4H", 1), H=3) == (12, 1)."""
    if "H" in dims:
        dims.setdefault("4H", 4 * dims["H"])
    return tuple(d if isinstance(d, int) else dims[d] for d in rule)


def weight_mask_shape(variant: object, hidden: int) -> tuple[int, ...]:
    """The DropConnect mask on weight_hh (4H, H) of a WeightDrop form."""
    rule = entry(variant).weight_mask
    if rule is None:
        raise ValueError(f"variant {entry(variant).name!r} has no weight-drop mask")
    return resolve(rule, H=hidden)
