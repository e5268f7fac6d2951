"""The small PyTorch specs several backend tests share: sizes, rates and `make_spec`, a two-layer
model of a variant with every rate it uses (tests/frameworks/torch_backend/)."""

from __future__ import annotations

from frameworks.spec import ModelSpec, TaskKind, Variant, rates_used_by

LM, CLS = TaskKind.LANGUAGE_MODEL, TaskKind.CLASSIFIER
RATES = {"embedding": 0.25, "input": 0.3, "recurrent": 0.4, "weight": 0.5, "output": 0.2}
B, T, V, E, H = 3, 6, 20, 4, 5


def make_spec(variant: Variant, task: TaskKind = LM, rates: dict | None = None, **kw) -> ModelSpec:
    used = {f"{k}_dropout": p for k, p in (rates or {}).items() if k in rates_used_by(variant)}
    if rates is None:
        used = {f"{k}_dropout": p for k, p in RATES.items() if k in rates_used_by(variant)}
        if variant is Variant.TORCH_BUILTIN:
            used.pop("input_dropout")  # nn.LSTM's own dropout cannot take injected masks
    base = dict(
        task_kind=task, vocab_size=V, num_outputs=V if task is LM else 3, embed_size=E,
        hidden_size=H, num_layers=2, variant=variant, init_scale=0.4,
    )  # fmt: skip
    base.update(used)
    base.update(kw)
    return ModelSpec(**base)
