"""Which masks a forward call draws: names, shapes and rates, per the contract in base.py.

Framework-neutral and shared by both backends: a pure function of the spec and the batch shape,
so the draw order (embedding, then per layer one mask per slot of `variants.LAYER_SLOTS`, then
output) and every shape are decided in one place and can be checked without running a model.
Masks a library draws itself (torch_builtin's nn.LSTM dropout, keras3_builtin's LSTM and Dropout)
are not planned.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from frameworks import variants
from frameworks.spec import Granularity, ModelSpec, OutputMode, TaskKind, Variant

Phase = Literal["train", "mc", "eval"]  # mc: one stochastic evaluation pass, masks as in train
TRAIN, MC, EVAL = "train", "mc", "eval"
LIBRARY_DROPOUT = frozenset(Variant(n) for n in variants.in_group("library"))


class MaskRequest(NamedTuple):
    name: str
    shape: tuple[int, ...]
    rate: float


def weight_mask_shape(variant: Variant, hidden: int, gates: int = 4) -> tuple[int, ...]:
    """The DropConnect mask on weight_hh (GH, H) of each weightdrop form (its registry rule)."""
    return variants.weight_mask_shape(variant, hidden, gates)


def naive_output(spec: ModelSpec) -> bool:
    """The output mask the suite draws is a plain per-time-step Dropout (naive variant, or
    output_mode=naive); False when the suite draws none (a library layer's own Dropout)."""
    entry = variants.entry(spec.variant)
    if entry.output_mask is None:
        return False
    if entry.output_mask == "per_step":
        return True
    return "output_mode" in entry.knobs and spec.output_mode is OutputMode.NAIVE


def mask_plan(spec: ModelSpec, batch: int, steps: int, phase: Phase) -> list[MaskRequest]:
    """Masks of one forward call in draw order. phase: `train` or `mc` (training, or one MC
    pass) or `eval` (deterministic evaluation: nothing, except the `eval_active` row mask)."""
    if phase not in (TRAIN, MC, EVAL):
        raise ValueError(f"phase={phase!r} is not one of: {TRAIN}, {MC}, {EVAL}")
    v, h = spec.variant, spec.hidden_size
    if phase == EVAL:
        if not spec.eval_active:
            return []
        return [
            MaskRequest(f"weight.{k}", weight_mask_shape(v, h, spec.gates), spec.rate("weight"))
            for k in range(spec.num_layers)
            if spec.rate("weight") > 0
        ]
    if not variants.entry(v).rates:
        return []
    bm = 1 if spec.granularity is Granularity.BATCH else batch
    plan: list[MaskRequest] = []
    if spec.rate("embedding") > 0:
        plan.append(MaskRequest("embedding", (spec.vocab_size, 1), spec.rate("embedding")))
    for k in range(spec.num_layers):
        d = spec.embed_size if k == 0 else h
        plan += _layer_masks(spec, k, d, batch, steps, bm)
    if spec.rate("output") > 0 and variants.entry(v).output_mask is not None:
        shape = _output_shape(spec, batch, steps, bm)
        plan.append(MaskRequest("output", shape, spec.rate("output")))
    return plan


def _layer_masks(
    spec: ModelSpec, k: int, d: int, batch: int, steps: int, bm: int
) -> list[MaskRequest]:
    entry, h = variants.entry(spec.variant), spec.hidden_size
    dims = {"B": batch, "Bm": bm, "T": steps, "Tm": steps if spec.per_step else 1, "D": d,
            "H": h, "G": spec.gates}
    out: list[MaskRequest] = []
    for slot, rule in entry.layer_masks().items():
        p = spec.rate(variants.LAYER_SLOTS[slot])
        if p > 0 and rule is not None:  # None: not used, or drawn by the library itself
            out.append(MaskRequest(f"{slot}.{k}", variants.resolve(rule, **dims), p))
    return out


def _output_shape(spec: ModelSpec, batch: int, steps: int, bm: int) -> tuple[int, ...]:
    h = spec.hidden_size
    # A plain Dropout layer is per sample whatever the granularity of the variational masks.
    rows = batch if naive_output(spec) else bm
    if spec.task_kind is TaskKind.CLASSIFIER:
        return (rows, h)
    return (batch, steps, h) if naive_output(spec) else (bm, 1, h)
