"""One recurrent layer per variant family, holding its weights in Keras layout.

`VariantRNN` is the suite's own layer (every variant but `keras3_builtin`, LSTM or GRU): it
takes its masks as tensors, applies them by slot and shape, and runs its time loop on the path
frameworks/compute.py chooses from compute.py's list: the compiled op of `native_loop.py` (every
cell, and every hook that declares its core slots), else the LSTM's hand-ordered loops of
the cell seam's loop of `cells.py` (the `tf.function` path) otherwise. `BuiltinLSTM`
wraps the stock `keras.layers.LSTM` for the library reference row. Both speak time-major
(T, B, D) and hold kernel = w_ih.T (D, GH), recurrent_kernel = w_hh.T (H, GH), one bias (GH,)
and, for the GRU, the recurrent-side bias_hh (GH,).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from frameworks import variants
from frameworks.compute import Call, Compute, PathRecord, candidates
from frameworks.keras_backend import cells, compute, hooks, native_loop
from frameworks.spec import ModelSpec


def masked_recurrent_kernel(u: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Apply a weight-drop mask given in w_hh (GH, H) orientation to U = w_hh.T (H, GH), by its
    shape: (GH, H) elementwise, (GH, 1) gate units, (1, H) units of h_{t-1}, or (G, 1, H) one
    column mask per gate block."""
    if len(mask.shape) == 2:
        return u * tf.transpose(mask)
    hid, gates = u.shape[0], mask.shape[0]
    per_gate = tf.reshape(u, (hid, gates, hid)) * tf.transpose(mask, (2, 0, 1))
    return tf.reshape(per_gate, (hid, gates * hid))


class _Weights(keras.layers.Layer):
    """Exchange of the Keras-layout weights with the shared numpy naming scheme."""

    def weight_vars(self) -> dict[str, keras.Variable]:
        """kernel, recurrent_kernel, bias (and bias_hh), by their numpy names' last part."""
        raise NotImplementedError

    def set_numpy(self, weights: dict[str, np.ndarray]) -> None:
        for name, var in self.weight_vars().items():
            value = weights[name]
            var.assign(np.ascontiguousarray(value.T) if name.startswith("w_") else value)

    def get_numpy(self) -> dict[str, np.ndarray]:
        out = {}
        for name, var in self.weight_vars().items():
            value = np.asarray(var.numpy())
            out[name] = np.ascontiguousarray(value.T) if name.startswith("w_") else value.copy()
        return out


class VariantRNN(_Weights):
    """The suite's recurrent layer; every mask arrives as a tensor (or is absent = not drawn)."""

    def __init__(self, input_size: int, hidden_size: int, spec: ModelSpec, k: int,
                 settings: Compute, paths: PathRecord, **kwargs):
        super().__init__(**kwargs)
        self.spec, self.k = spec, k
        self.settings, self.paths = settings, paths
        self.cell = spec.cell.value
        self.entry = variants.entry(spec.variant)
        gh = spec.gates * hidden_size
        self.kernel = self.add_weight(shape=(input_size, gh), initializer="zeros", name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(hidden_size, gh), initializer="zeros", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(gh,), initializer="zeros", name="bias")
        self.bias_hh = None
        if spec.cell_info.bias_hh:
            self.bias_hh = self.add_weight(shape=(gh,), initializer="zeros", name="bias_hh")

    def weight_vars(self) -> dict[str, keras.Variable]:
        out = {"w_ih": self.kernel, "w_hh": self.recurrent_kernel, "bias": self.bias}
        if self.bias_hh is not None:
            out["bias_hh"] = self.bias_hh
        return out

    def forward(self, xs: tf.Tensor, h: tf.Tensor, c: tf.Tensor, masks: dict[str, tf.Tensor],
                training: bool = False) -> cells.Loop:
        """xs (T, B, D) -> (outputs (T, B, H), h_T, c_T). Without masks or hooks every variant
        runs the same loop as `none`, so a zero rate gives exactly the no-dropout numbers."""
        del training  # dropout is fully described by the masks (and the hooks' rates)
        k = self.k
        in_mask, rec_mask = masks.get(f"input.{k}"), masks.get(f"recurrent.{k}")
        if in_mask is not None and self.entry.sequence_input:
            xs, in_mask = xs * tf.transpose(in_mask, (1, 0, 2)), None  # (B|Bm, T|1, D)
        kernel, u, bias = (tf.convert_to_tensor(v) for v in
                           (self.kernel, self.recurrent_kernel, self.bias))
        if f"weight.{k}" in masks:
            u = masked_recurrent_kernel(u, masks[f"weight.{k}"])
        step_hooks = hooks.for_layer(self.spec, k, masks)
        call = Call(self.cell, "gpu" if native_loop.on_gpu(xs) else "cpu", xs.dtype.name,
                    self.entry.order, frozenset(h.kind for h in step_hooks))
        bias_hh = None if self.bias_hh is None else tf.convert_to_tensor(self.bias_hh)
        for path in candidates(compute.PATHS, self.settings, call, compute.SETTING):
            done = None  # the compiled op returns None where it could not be built
            if path.name == "cpp":
                done = native_loop.run(self.cell, xs, h, c, kernel, u, bias, bias_hh, in_mask,
                                       rec_mask, step_hooks)
            else:  # tf.function: the loop inside the runner's traced function
                done = cells.run(self.cell, xs, h, c, kernel, u, bias, bias_hh, in_mask,
                                 rec_mask, step_hooks)
            if done is not None:
                self.paths.note(path.name)  # at tracing: once per traced function
                return done
        raise AssertionError("the tf.function path computes every call")


class BuiltinLSTM(_Weights):
    """Stock `keras.layers.LSTM(dropout=input, recurrent_dropout=recurrent)`: a reference row.

    Behaviour of the pinned Keras 3.15 (read from its source and checked in the tests):
    - recurrent_dropout > 0 forces `implementation=1`, which draws 4 per-gate input masks and 4
      per-gate recurrent masks (B, D)/(B, H), per sample, constant over time ("untied", = impl1).
    - recurrent_dropout == 0 keeps implementation 2: one input mask (B, D) shared by all gates.
    - `LSTM(dropout>0, implementation=1, recurrent_dropout=0)` with the default use_cudnn="auto"
      crashes (the cuDNN attempt broadcasts the list of 4 masks), so use_cudnn=False here; on CPU
      "auto" falls back to the same generic loop anyway.
    - masks are drawn on every call, inference included (RNN.call pre-populates them), which
      advances the layer's SeedGenerator; the runner swaps that state for evaluation so the
      training masks of a seed do not depend on evaluation calls.
    Its masks come from its own SeedGenerator: they cannot be injected or counted.
    """

    def __init__(self, input_size: int, hidden_size: int, dropout: float, recurrent: float,
                 seed: int, **kwargs):
        super().__init__(**kwargs)
        self.lstm = keras.layers.LSTM(
            hidden_size,
            dropout=dropout,
            recurrent_dropout=recurrent,
            return_sequences=True,
            return_state=True,
            use_cudnn=False,
            seed=seed,
        )
        self.lstm.build((None, None, input_size))

    def weight_vars(self) -> dict[str, keras.Variable]:
        cell = self.lstm.cell
        return {"w_ih": cell.kernel, "w_hh": cell.recurrent_kernel, "bias": cell.bias}

    def seed_generators(self) -> list[keras.random.SeedGenerator]:
        return [self.lstm.cell.seed_generator]

    def forward(self, xs: tf.Tensor, h: tf.Tensor, c: tf.Tensor,
                masks: dict[str, tf.Tensor] | None = None,
                training: bool = False) -> cells.Loop:
        if any(name not in ("embedding", "output") for name in masks or {}):
            raise ValueError("keras3_builtin draws its own masks; none can be passed in")
        seq, h, c = self.lstm(tf.transpose(xs, (1, 0, 2)), initial_state=[h, c],
                              training=training)
        return tf.transpose(seq, (1, 0, 2)), h, c
