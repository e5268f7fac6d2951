"""Initial weights, drawn in numpy so that both frameworks start from identical weights for the
same seed (matched pairs by construction). Config key `model.init`:

- `uniform` (default): every parameter uniform(-s, s), s = model.init_scale (Zaremba et al.).
- `keras`: Keras' layer defaults, as a Keras user's model starts: Embedding uniform(-0.05, 0.05);
  LSTM/GRU kernel glorot_uniform over Keras' (D, G*H) kernel, limit sqrt(6 / (D + G*H));
  recurrent kernel orthogonal over Keras' (H, G*H) matrix (so w_hh = its transpose has
  orthonormal columns); biases zero, the LSTM forget block one (unit_forget_bias=True); Dense
  glorot_uniform, limit sqrt(6 / (H + C)), bias zero.
- `torch`: PyTorch's module defaults: nn.Embedding normal(0, 1); nn.LSTM/nn.GRU every weight and
  bias uniform(-1/sqrt(H), 1/sqrt(H)), where the LSTM's one bias is the sum of PyTorch's two
  (b_ih + b_hh, each drawn so); nn.Linear weight and bias uniform(-1/sqrt(H), 1/sqrt(H)).

`init_scale` is used by `uniform` only. Why a scheme rather than one rule: published results
(Part 3's Keras arms) were trained from their framework's defaults, and an LSTM started with a
forget bias of one and an orthogonal recurrent matrix is a different experiment.
"""

from __future__ import annotations

import numpy as np

from frameworks.spec import Init, ModelSpec


def _orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer): the QR
    factor of a standard normal draw, signs fixed by R's diagonal (a uniform draw over the
    orthogonal group, as Keras' Orthogonal initialiser makes it)."""
    tall = rows >= cols
    q, r = np.linalg.qr(rng.standard_normal((rows, cols) if tall else (cols, rows)))
    q = q * np.sign(np.diag(r))
    return q if tall else q.T


def _keras(spec: ModelSpec, shapes: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, g = spec.hidden_size, spec.gates
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name == "embedding":
            out[name] = rng.uniform(-0.05, 0.05, size=shape)
        elif name.endswith(".w_ih"):
            gh, d = shape
            limit = np.sqrt(6.0 / (d + gh))
            out[name] = rng.uniform(-limit, limit, size=shape)
        elif name.endswith(".w_hh"):
            out[name] = _orthogonal(rng, h, g * h).T
        elif name.endswith((".bias", ".bias_hh")):
            bias = np.zeros(shape)
            if spec.cell.value == "lstm" and name.endswith(".bias"):
                bias[h:2 * h] = 1.0  # forget block (gate order i, f, g, o)
            out[name] = bias
        elif name == "decoder.weight":
            c, hh = shape
            limit = np.sqrt(6.0 / (hh + c))
            out[name] = rng.uniform(-limit, limit, size=shape)
        elif name == "decoder.bias":
            out[name] = np.zeros(shape)
        else:
            raise KeyError(f"no keras initialiser for weight {name!r}")
    return out


def _torch(spec: ModelSpec, shapes: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    bound = 1.0 / np.sqrt(spec.hidden_size)
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name == "embedding":
            out[name] = rng.standard_normal(shape)
        elif name.endswith(".bias") and spec.cell.value == "lstm":
            out[name] = rng.uniform(-bound, bound, size=shape) + rng.uniform(-bound, bound,
                                                                             size=shape)
        else:
            out[name] = rng.uniform(-bound, bound, size=shape)
    return out


def initial_weights(spec: ModelSpec, shapes: dict[str, tuple[int, ...]],
                    seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 0x1D1])
    if spec.init is Init.UNIFORM:
        s = spec.init_scale
        drawn = {name: rng.uniform(-s, s, size=shape) for name, shape in shapes.items()}
    elif spec.init is Init.KERAS:
        drawn = _keras(spec, shapes, rng)
    else:
        drawn = _torch(spec, shapes, rng)
    return {name: w.astype(np.float32) for name, w in drawn.items()}
