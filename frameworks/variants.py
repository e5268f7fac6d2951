"""The dropout variants, one declarative entry each: the one place a variant is defined.

Every fact the suite needs about a variant *before* a framework runs it lives in its `Entry`:
the rates it uses, the knobs it allows, its groups, the shapes of the masks the suite draws for
it, which frameworks implement it and how it runs. `frameworks.spec` derives `Variant`, the
validation rules and the family sets from here, `frameworks.masks` the mask shapes,
`frameworks.rules` whether a key has an effect, and `experiments.run`, the report and the tests
ask the query functions below. What a variant
computes is described in docs/SEMANTICS.md; how a backend computes it stays in the backend.

Framework-neutral and dependency-free: no torch, no tensorflow, no other suite module.

Mask shape rules are tuples of dimensions, resolved by `resolve`: an int is a literal size;
"B" batch size, "Bm" the variational batch axis (B, or 1 with granularity=batch), "T" time
steps, "Tm" the per-step axis (T with dropout.per_step=true, else 1), "D" the layer's input
size, "H" hidden size, "G" the cell's gate count (LSTM 4, GRU 3), "GH" G times H. All shapes
are in PyTorch orientation (weight_hh is (GH, H)); the Keras backend applies them transposed.

A cell is its gate count and its state; the backends hold its step function (the cell seam).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

RATES = ("embedding", "input", "recurrent", "output", "weight",  # config keys dropout.<rate>
         "zoneout_cell", "zoneout_hidden")
KNOBS = ("granularity", "output_mode", "eval_active", "per_step")  # config keys dropout.<knob>
FRAMEWORKS = ("torch", "keras")


@dataclass(frozen=True)
class Cell:
    """A recurrent cell as the framework-neutral code sees it (config key model.cell)."""

    name: str
    gates: int  # row blocks of w_ih / w_hh: LSTM i, f, g, o; GRU r, z, n (PyTorch order)
    state: tuple[str, ...]  # what it carries: LSTM h and c, GRU h only
    bias_hh: bool  # a separate recurrent-side bias (GRU: it sits inside the reset product)


CELLS: dict[str, Cell] = {
    "lstm": Cell("lstm", 4, ("h", "c"), bias_hh=False),
    "gru": Cell("gru", 3, ("h",), bias_hh=True),
}
# A rate that acts on one state only: refused for a cell that does not carry that state.
RATE_STATE: dict[str, str] = {"zoneout_cell": "c"}
# Masks drawn per layer, in draw order; each is drawn with the rate named here. `input` and
# `weight` act outside the step loop; every other slot is consumed inside it (by the loop or by
# a per-step hook of the backend).
LAYER_SLOTS: dict[str, str] = {"input": "input", "recurrent": "recurrent",
                               "candidate": "recurrent", "weight": "weight",
                               "zoneout_cell": "zoneout_cell", "zoneout_hidden": "zoneout_hidden"}
# gal: Gal-style variational masks on input and h_{t-1} (Keras implementation 0/1/2);
# weightdrop: DropConnect on weight_hh (AWD-LSTM's WeightDrop and its column forms);
# locked: variational (LockedDropout) masks on the layer inputs and the output;
# library: a library layer draws its own masks (only `embedding` goes through the sampler);
# cell: dropout inside the cell update (Semeniuta's candidate mask, Zoneout's state mix).
GROUPS = ("gal", "weightdrop", "locked", "library", "cell")
# fused: the library's own LSTM path (nn.LSTM / the fused Keras loop, or the stock library
# layer); masked_weight: a masked weight_hh passed into that fused path; step_loop: the suite's
# own per-step loop (masks inside the recurrence).
RUNS_AS = ("fused", "masked_weight", "step_loop")
DIMS = ("B", "Bm", "T", "Tm", "D", "H", "G", "GH")
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
    cells: frozenset[str] = frozenset(CELLS)
    input_mask: Shape | None = None  # input.k as drawn by the suite's sampler
    recurrent_mask: Shape | None = None  # recurrent.k (on h_{t-1} only)
    candidate_mask: Shape | None = None  # candidate.k, on the cell's candidate update
    weight_mask: Shape | None = None  # weight.k, the DropConnect mask on weight_hh
    zoneout_cell_mask: Shape | None = None  # zoneout_cell.k: which units of c take the update
    zoneout_hidden_mask: Shape | None = None  # zoneout_hidden.k: the same for h
    output_mask: str | None = None  # one of OUTPUT_MASKS, or None
    order: int | None = None  # step-loop computation order: Keras 2.0 implementation 0/1/2
    # rates a library layer applies only between stacked layers (nn.LSTM's dropout): on a
    # one-layer model they have no effect, and a non-zero one is refused (frameworks/rules.py)
    between_layers: frozenset[str] = frozenset()
    summary: str = ""

    def __post_init__(self) -> None:
        for name in ("rates", "knobs", "groups", "frameworks", "cells", "between_layers"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))
        _check_subset(self, "rates", self.rates, RATES)
        _check_subset(self, "between_layers", self.between_layers, tuple(self.rates))
        _check_subset(self, "cells", self.cells, tuple(CELLS))
        _check_subset(self, "knobs", self.knobs, KNOBS)
        _check_subset(self, "groups", self.groups, GROUPS)
        _check_subset(self, "frameworks", self.frameworks, FRAMEWORKS)
        if self.runs_as not in RUNS_AS:
            raise ValueError(f"variant {self.name!r}: runs_as={self.runs_as!r} not in {RUNS_AS}")
        if self.output_mask is not None and self.output_mask not in OUTPUT_MASKS:
            raise ValueError(f"variant {self.name!r}: output_mask not in {OUTPUT_MASKS}")
        masks = {**self.layer_masks(), "output": self.output_mask}
        slot_rate = {**LAYER_SLOTS, "output": "output"}
        for slot, mask in masks.items():  # the suite draws a mask only for a rate it uses
            if mask is not None and slot_rate[slot] not in self.rates:
                raise ValueError(f"variant {self.name!r}: a {slot} mask without the "
                                 f"{slot_rate[slot]} rate")
            if isinstance(mask, tuple):
                bad = [d for d in mask if not isinstance(d, int) and d not in DIMS]
                if bad:
                    raise ValueError(f"variant {self.name!r}: unknown dimensions {bad}")
        drawn = {slot_rate[slot] for slot, mask in masks.items() if mask is not None}
        if "library" not in self.groups and self.rates - {"embedding"} - drawn:
            raise ValueError(f"variant {self.name!r}: a rate without its mask")

    @property
    def sequence_input(self) -> bool:
        """Its input mask multiplies the layer's input sequence before any time loop: a rule
        (B|Bm, T|1, D) with a time axis, rather than a Gal mask (G?, Bm, D) inside the loop."""
        return self.input_mask is not None and len(self.input_mask) == 3 \
            and self.input_mask[1] in ("T", 1)

    def layer_masks(self) -> dict[str, Shape | None]:
        """The per-layer mask rules by slot, in draw order (None: not drawn)."""
        return {slot: getattr(self, f"{slot}_mask") for slot in LAYER_SLOTS}

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


def _gal(name: str, order: int, per_gate: bool, summary: str) -> Entry:
    """The Gal family: variational masks on the input and on h_{t-1}, per gate or tied."""
    gates: Shape = ("G",) if per_gate else ()
    return Entry(name, _GAL_RATES, "step_loop", knobs=_GAL_KNOBS, groups=("gal",),
                 input_mask=(*gates, "Bm", "D"), recurrent_mask=(*gates, "Bm", "H"),
                 output_mask="variational", order=order, summary=summary)


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
    _gal("keras_impl0", 0, True, "Gal, untied per-gate masks, Keras 2.0 implementation=0 order"),
    _gal("keras_impl1", 1, True, "Gal, untied per-gate masks, Keras 2.0 implementation=1 order"),
    _gal("keras_impl2", 2, False, "Gal, one mask tied across the gates"),
    _weightdrop("weightdrop", ("GH", "H"), "AWD WeightDrop: elementwise DropConnect on W_hh"),
    _weightdrop("weightdrop_variational", ("GH", 1),
                "AWD WeightDrop(variational=True): rows of W_hh (gate units)",
                knobs=("eval_active",)),
    _weightdrop("weightdrop_column", (1, "H"), "columns of W_hh (units of h_{t-1})"),
    _weightdrop("weightdrop_column_untied", ("G", 1, "H"),
                "columns of W_hh, one mask per gate row block"),
    Entry("locked", ("embedding", "input", "output"), "fused", knobs=("granularity",),
          groups=("locked",), input_mask=("Bm", 1, "D"), output_mask="variational",
          summary="awd LockedDropout on inputs and output"),
    Entry("torch_builtin", ("embedding", "input"), "fused", groups=("library",),
          frameworks=("torch",), cells=("lstm",), between_layers=("input",),
          summary="nn.LSTM(dropout=input): between stacked layers only"),
    Entry("keras3_builtin", _GAL_RATES, "fused", knobs=("output_mode",), groups=("library",),
          frameworks=("keras",), cells=("lstm",),
          summary="stock keras.layers.LSTM(dropout, recurrent_dropout)"),
    Entry("semeniuta", _GAL_RATES, "step_loop", knobs=(*_GAL_KNOBS, "per_step"),
          groups=("cell",), input_mask=("Bm", 1, "D"), candidate_mask=("Bm", "Tm", "H"),
          output_mask="variational",
          summary="Semeniuta 2016: dropout on the candidate update only, never on the memory"),
    Entry("zoneout", ("zoneout_cell", "zoneout_hidden"), "step_loop", groups=("cell",),
          zoneout_cell_mask=("B", "T", "H"), zoneout_hidden_mask=("B", "T", "H"),
          summary="Krueger 2017: per unit and step, keep the previous c or h, not the update"),
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


def cell(name: str) -> Cell:
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"model.cell={name!r} is not one of: {', '.join(CELLS)}") from None


def resolve(rule: Shape, **dims: int) -> tuple[int, ...]:
    """A shape rule with its dimensions filled in, e.g. resolve(("GH", 1), H=3, G=4) == (12, 1)
    (G defaults to the LSTM's 4)."""
    dims.setdefault("G", CELLS["lstm"].gates)
    if "H" in dims:
        dims.setdefault("GH", dims["G"] * dims["H"])
    return tuple(d if isinstance(d, int) else dims[d] for d in rule)


def weight_mask_shape(variant: object, hidden: int, gates: int = 4) -> tuple[int, ...]:
    """The DropConnect mask on weight_hh (GH, H) of a WeightDrop form."""
    rule = entry(variant).weight_mask
    if rule is None:
        raise ValueError(f"variant {entry(variant).name!r} has no weight-drop mask")
    return resolve(rule, H=hidden, G=gates)
