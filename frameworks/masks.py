"""Which masks a forward call draws: names, shapes and rates, per the contract in base.py.

Framework-neutral and shared by both backends: a pure function of the spec and the batch shape,
so the draw order (embedding, then per layer input.k, recurrent.k, weight.k, then output) and
every shape are decided in one place and can be checked without running a model. Masks a library
draws itself (torch_builtin's nn.LSTM dropout, keras3_builtin's LSTM and Dropout) are not planned.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from frameworks.spec import (
    GAL_FAMILY,
    LOCKED_FAMILY,
    WEIGHTDROP_FAMILY,
    Granularity,
    ModelSpec,
    OutputMode,
    TaskKind,
    Variant,
)

Phase = Literal["train", "mc", "eval"]  # mc: one stochastic evaluation pass, masks as in train
TRAIN, MC, EVAL = "train", "mc", "eval"
LIBRARY_DROPOUT = frozenset({Variant.TORCH_BUILTIN, Variant.KERAS3_BUILTIN})


class MaskRequest(NamedTuple):
    name: str
    shape: tuple[int, ...]
    rate: float


def weight_mask_shape(variant: Variant, hidden: int) -> tuple[int, ...]:
    """The DropConnect mask on weight_hh (4H, H) of each weightdrop form."""
    return {
        Variant.WEIGHTDROP: (4 * hidden, hidden),
        Variant.WEIGHTDROP_VARIATIONAL: (4 * hidden, 1),
        Variant.WEIGHTDROP_COLUMN: (1, hidden),
        Variant.WEIGHTDROP_COLUMN_UNTIED: (4, 1, hidden),
    }[variant]


def naive_output(spec: ModelSpec) -> bool:
    """Output dropout is a plain per-time-step Dropout (naive variant, or Gal output_mode=naive)."""
    if spec.variant is Variant.NAIVE:
        return True
    return spec.variant in GAL_FAMILY and spec.output_mode is OutputMode.NAIVE


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
            MaskRequest(f"weight.{k}", weight_mask_shape(v, h), spec.weight_dropout)
            for k in range(spec.num_layers)
            if spec.weight_dropout > 0
        ]
    if v is Variant.NONE:
        return []
    bm = 1 if spec.granularity is Granularity.BATCH else batch
    plan: list[MaskRequest] = []
    if spec.embedding_dropout > 0:
        plan.append(MaskRequest("embedding", (spec.vocab_size, 1), spec.embedding_dropout))
    for k in range(spec.num_layers):
        d = spec.embed_size if k == 0 else h
        plan += _layer_masks(spec, k, d, batch, steps, bm)
    if spec.output_dropout > 0 and v is not Variant.KERAS3_BUILTIN:
        shape = _output_shape(spec, batch, steps, bm)
        plan.append(MaskRequest("output", shape, spec.output_dropout))
    return plan


def _layer_masks(
    spec: ModelSpec, k: int, d: int, batch: int, steps: int, bm: int
) -> list[MaskRequest]:
    v, h = spec.variant, spec.hidden_size
    out: list[MaskRequest] = []
    p_in, p_rec, p_w = spec.input_dropout, spec.recurrent_dropout, spec.weight_dropout
    if p_in > 0 and v not in LIBRARY_DROPOUT:
        if v is Variant.NAIVE:
            shape: tuple[int, ...] = (batch, steps, d)
        elif v in LOCKED_FAMILY:
            shape = (bm, 1, d)
        elif v is Variant.KERAS_IMPL2:
            shape = (bm, d)
        else:
            shape = (4, bm, d)
        out.append(MaskRequest(f"input.{k}", shape, p_in))
    if p_rec > 0 and v in GAL_FAMILY:
        shape = (bm, h) if v is Variant.KERAS_IMPL2 else (4, bm, h)
        out.append(MaskRequest(f"recurrent.{k}", shape, p_rec))
    if p_w > 0 and v in WEIGHTDROP_FAMILY:
        out.append(MaskRequest(f"weight.{k}", weight_mask_shape(v, h), p_w))
    return out


def _output_shape(spec: ModelSpec, batch: int, steps: int, bm: int) -> tuple[int, ...]:
    h = spec.hidden_size
    # A plain Dropout layer is per sample whatever the granularity of the variational masks.
    rows = batch if naive_output(spec) else bm
    if spec.task_kind is TaskKind.CLASSIFIER:
        return (rows, h)
    return (batch, steps, h) if naive_output(spec) else (bm, 1, h)
