"""Which masks one forward call draws: names, shapes and rates, in the contract's order.

Framework-neutral (no TensorFlow): the shapes are those of the mask naming scheme in
`frameworks.base`; the order is embedding, then per layer input.k, recurrent.k, weight.k, then
output. Masks the library draws itself (`keras3_builtin`'s LSTM dropout and output `Dropout`)
are not in the plan.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from frameworks.spec import (
    GAL_FAMILY,
    LOCKED_FAMILY,
    Granularity,
    ModelSpec,
    OutputMode,
    TaskKind,
    Variant,
)

Phase = Literal["train", "mc", "eval"]


class MaskRequest(NamedTuple):
    name: str
    shape: tuple[int, ...]
    rate: float


def _weight_shape(variant: Variant, hidden: int) -> tuple[int, ...]:
    """Weight-drop mask shapes, in the naming scheme's w_hh (4H, H) orientation."""
    return {
        Variant.WEIGHTDROP: (4 * hidden, hidden),
        Variant.WEIGHTDROP_VARIATIONAL: (4 * hidden, 1),
        Variant.WEIGHTDROP_COLUMN: (1, hidden),
        Variant.WEIGHTDROP_COLUMN_UNTIED: (4, 1, hidden),
    }[variant]


def _input_shape(spec: ModelSpec, b: int, bm: int, t: int, d: int) -> tuple[int, ...] | None:
    v = spec.variant
    if v is Variant.NAIVE:
        return (b, t, d)
    if v in LOCKED_FAMILY:
        return (bm, 1, d)
    if v in (Variant.KERAS_IMPL0, Variant.KERAS_IMPL1):
        return (4, bm, d)
    if v is Variant.KERAS_IMPL2:
        return (bm, d)
    return None  # keras3_builtin: the library's own LSTM dropout


def _output_shape(spec: ModelSpec, b: int, bm: int, t: int) -> tuple[int, ...] | None:
    v, h = spec.variant, spec.hidden_size
    if v is Variant.KERAS3_BUILTIN:
        return None  # plain keras Dropout layer, the library's own RNG
    # A naive (plain Dropout) mask is per sample and per time step whatever the granularity.
    naive = v is Variant.NAIVE or (v in GAL_FAMILY and spec.output_mode is OutputMode.NAIVE)
    if spec.task_kind is TaskKind.CLASSIFIER:
        return (b, h) if naive else (bm, h)
    return (b, t, h) if naive else (bm, 1, h)


def mask_plan(spec: ModelSpec, batch: int, steps: int, phase: Phase) -> list[MaskRequest]:
    """The masks of one forward call on a (batch, steps) input.

    `eval` (standard evaluation) draws nothing, except awd's always-on row mask when
    `eval_active` is set; `train` and `mc` draw every mask whose rate is non-zero.
    """
    v, h = spec.variant, spec.hidden_size
    if phase == "eval":
        if not (spec.eval_active and spec.weight_dropout > 0):
            return []
        return [
            MaskRequest(f"weight.{k}", _weight_shape(v, h), spec.weight_dropout)
            for k in range(spec.num_layers)
        ]
    bm = 1 if spec.granularity is Granularity.BATCH else batch
    plan: list[MaskRequest] = []
    if spec.embedding_dropout > 0 and v is not Variant.NONE:
        plan.append(MaskRequest("embedding", (spec.vocab_size, 1), spec.embedding_dropout))
    for k in range(spec.num_layers):
        d = spec.embed_size if k == 0 else h
        shape = _input_shape(spec, batch, bm, steps, d)
        if spec.input_dropout > 0 and shape is not None:
            plan.append(MaskRequest(f"input.{k}", shape, spec.input_dropout))
        if spec.recurrent_dropout > 0 and v in GAL_FAMILY:
            rec = (bm, h) if v is Variant.KERAS_IMPL2 else (4, bm, h)
            plan.append(MaskRequest(f"recurrent.{k}", rec, spec.recurrent_dropout))
        if spec.weight_dropout > 0:
            plan.append(MaskRequest(f"weight.{k}", _weight_shape(v, h), spec.weight_dropout))
    shape = _output_shape(spec, batch, bm, steps)
    if spec.output_dropout > 0 and shape is not None:
        plan.append(MaskRequest("output", shape, spec.output_dropout))
    return plan
