"""The backend contract shared by the PyTorch and Keras implementations.

Nothing above `frameworks/` imports torch or tensorflow: it asks `load_backend(name)` for the
backend module, which imports exactly one framework. Both runners speak numpy at the boundary
(batches in, probabilities and weight dicts out), so metrics, checkpoints and parity tests are
framework-neutral.

Weight naming scheme (numpy float32, shared by both backends and by `initial_weights`):

    embedding           (V, E)
    rnn.{k}.w_ih        (GH, D_k)  G row blocks: LSTM i, f, g(candidate), o; GRU r, z, n
    rnn.{k}.w_hh        (GH, H)    same row blocks; a column is one unit of h_{t-1}
    rnn.{k}.bias        (GH,)      LSTM: the one bias (PyTorch trains b_ih and keeps b_hh frozen
                                   at 0, so optimisers, weight decay and clipping see it once,
                                   as in Keras); GRU: the input-side bias b_i
    rnn.{k}.bias_hh     (GH,)      GRU only: the recurrent-side bias b_h, inside the reset
                                   product r * (h U_n + b_hn), so it cannot be folded into b_i
    decoder.weight      (C, H)     absent when the decoder is tied to the embedding
    decoder.bias        (C,)

Mask naming scheme (every mask a variant uses is drawn through the runner's sampler, by name;
values are 0 or 1/(1-p); Bm is B for per-sample masks and 1 for per-minibatch masks):

    embedding    (V, 1)                       word types dropped for the whole batch
    input.{k}    naive (B, T, D_k); locked family and semeniuta (Bm, 1, D_k);
                 keras_impl0/1 (G, Bm, D_k) one per gate; keras_impl2 (Bm, D_k)
    recurrent.{k} keras_impl0/1 (G, Bm, H); keras_impl2 (Bm, H)   applied to h_{t-1} only
    candidate.{k} semeniuta (Bm, 1, H), or (Bm, T, H) with per_step: on the candidate update
    weight.{k}   weightdrop (GH, H); weightdrop_variational (GH, 1); weightdrop_column (1, H);
                 weightdrop_column_untied (G, 1, H) -> gate block g of weight_hh uses mask[g]
    output       LM: naive (B, T, H), variational/locked (Bm, 1, H); classifier: (Bm, H) on the
                 last hidden state, (B, H) whatever the granularity when naive

Masks are drawn once per forward call (one training batch, or one batch of one MC pass) in the
order embedding, then per layer one per slot of `variants.LAYER_SLOTS`, then output. The shape
rules themselves live in the registry (frameworks/variants.py); this table is their summary.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Protocol

import numpy as np

from frameworks import init as init_schemes
from frameworks.compute import DEFAULT, Compute
from frameworks.spec import Batch, ModelSpec, OptimSpec

FRAMEWORKS = {"torch": "frameworks.torch_backend", "keras": "frameworks.keras_backend"}


class DivergenceError(RuntimeError):
    """Raised by a runner as soon as a training batch gives a non-finite loss."""


class Runner(Protocol):
    """What a backend provides; one instance holds one model, its optimiser and its sampler."""

    spec: ModelSpec

    def __init__(self, spec: ModelSpec, optim: OptimSpec, seed: int, device: str = "cpu",
                 compute: Compute = DEFAULT):
        """Builds the model from `initial_weights(spec, seed)` and seeds its sampler; `compute`
        says how, not what, it computes (frameworks/compute.py)."""
        ...

    def compute_path(self) -> str:
        """Which path computed its per-step loops so far (logged as a param after training)."""
        ...

    def load_weights(self, weights: dict[str, np.ndarray]) -> None: ...

    def export_weights(self) -> dict[str, np.ndarray]: ...

    def train_epoch(self, batches: Iterable[Batch], lr: float) -> float:
        """One pass with updates; returns the mean loss per token (LM) or per example.
        Each step: global-norm clip, then coupled L2 (weight_decay), then SGD or Adam (PyTorch
        form, eps 1e-8). No batches is a ValueError; the LM state resets if the batch size
        changes within a call."""
        ...

    def predict(self, batches: Iterable[Batch], stochastic: bool) -> np.ndarray:
        """One pass without updates. LM: probability of each target token, flattened in batch
        order (B*T per batch). Classifier: (N, C) class probabilities. `stochastic=True` uses
        training-mode dropout masks (one MC sample); the LM hidden state is reset at the start
        of every call and carried across the batches of the call."""
        ...


def load_backend(framework: str) -> ModuleType:
    """Import only the requested backend (the two frameworks fight over threads). The module
    exports `Runner`, `LOOPS` (the values of its loop setting), `configure_threads(n)` and
    `device_available(device)`."""
    try:
        module_name = FRAMEWORKS[framework]
    except KeyError:
        raise ValueError(
            f"framework={framework!r} is unknown; allowed: {', '.join(FRAMEWORKS)}"
        ) from None
    return importlib.import_module(module_name)


def weight_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Shapes of every parameter under the shared naming scheme."""
    h, gh = spec.hidden_size, spec.gates * spec.hidden_size
    shapes: dict[str, tuple[int, ...]] = {"embedding": (spec.vocab_size, spec.embed_size)}
    for k in range(spec.num_layers):
        d = spec.embed_size if k == 0 else h
        shapes[f"rnn.{k}.w_ih"] = (gh, d)
        shapes[f"rnn.{k}.w_hh"] = (gh, h)
        shapes[f"rnn.{k}.bias"] = (gh,)
        if spec.cell_info.bias_hh:
            shapes[f"rnn.{k}.bias_hh"] = (gh,)
    if not spec.tie_weights:
        shapes["decoder.weight"] = (spec.num_outputs, h)
    shapes["decoder.bias"] = (spec.num_outputs,)
    return shapes


def initial_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """The starting weights of `spec` for `seed`, by the scheme `spec.init` names
    (frameworks/init.py); identical in both frameworks."""
    return init_schemes.initial_weights(spec, weight_shapes(spec), seed)


def check_weights(spec: ModelSpec, weights: dict[str, np.ndarray]) -> None:
    """Refuse a weight dict whose names or shapes do not match the spec, naming the culprit."""
    expected = weight_shapes(spec)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(f"weights do not match the model: missing {missing}, unexpected {extra}")
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape:
            raise ValueError(
                f"weight {name!r} has shape {tuple(weights[name].shape)}, the model needs {shape}"
            )


class NumpyMaskSource:
    """A framework-neutral mask source: the same seed gives the same masks in both backends.

    Masks are keyed by name, not by draw order. Backends' samplers accept one of these (or any
    callable with its signature) in place of their own RNG, which is how parity and semantics
    tests inject identical masks. Every draw is recorded as (name, shape, rate) so tests can
    count draws and check shapes.
    """

    def __init__(self, seed: int = 0, fixed: dict[str, np.ndarray] | None = None):
        self.seed = seed
        self.fixed = dict(fixed or {})
        self.counts: dict[str, int] = {}
        self.calls: list[tuple[str, tuple[int, ...], float]] = []
        self.drawn: list[np.ndarray] = []

    def __call__(self, name: str, shape: tuple[int, ...], rate: float) -> np.ndarray:
        shape = tuple(int(s) for s in shape)
        self.calls.append((name, shape, rate))
        if name in self.fixed:
            mask = np.asarray(self.fixed[name], dtype=np.float32)
            if mask.shape != shape:
                raise ValueError(f"injected mask {name!r} has shape {mask.shape}, need {shape}")
        else:
            # keyed by (seed, name, n-th draw of that name): independent of the order in which
            # a backend draws its masks, so both frameworks get the same mask under one name
            n = self.counts[name] = self.counts.get(name, -1) + 1
            rng = np.random.default_rng([self.seed, zlib.crc32(name.encode()), n])
            keep = rng.random(shape) >= rate
            mask = keep.astype(np.float32) / np.float32(1.0 - rate)
        self.drawn.append(mask)
        return mask


MaskSource = Callable[[str, tuple[int, ...], float], np.ndarray]
