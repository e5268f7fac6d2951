"""One LSTM layer per variant family, holding its weights in Keras layout.

`VariantLSTM` is the suite's own layer (every variant but `keras3_builtin`): it takes its masks
as tensors and picks the time loop of `recurrence.py`. `BuiltinLSTM` wraps the stock
`keras.layers.LSTM` for the library reference row. Both speak time-major (T, B, D) and hold
kernel = w_ih.T (D, 4H), recurrent_kernel = w_hh.T (H, 4H) and one bias (4H,).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from frameworks.keras_backend import recurrence
from frameworks.spec import Variant

_GAL_LOOPS = {
    Variant.KERAS_IMPL0: recurrence.run_impl0,
    Variant.KERAS_IMPL1: recurrence.run_impl1,
    Variant.KERAS_IMPL2: recurrence.run_impl2,
}


def masked_recurrent_kernel(u: tf.Tensor, mask: tf.Tensor, variant: Variant) -> tf.Tensor:
    """Apply a weight-drop mask given in w_hh (4H, H) orientation to U = w_hh.T (H, 4H)."""
    hid = u.shape[0]
    if variant is Variant.WEIGHTDROP:  # (4H, H) elementwise DropConnect
        return u * tf.transpose(mask)
    if variant is Variant.WEIGHTDROP_VARIATIONAL:  # (4H, 1): whole gate units (columns of U)
        return u * tf.reshape(mask, (1, 4 * hid))
    if variant is Variant.WEIGHTDROP_COLUMN:  # (1, H): units of h_{t-1} (rows of U)
        return u * tf.reshape(mask, (hid, 1))
    if variant is Variant.WEIGHTDROP_COLUMN_UNTIED:  # (4, 1, H): gate block g uses mask[g]
        per_gate = tf.reshape(u, (hid, 4, hid)) * tf.transpose(mask, (2, 0, 1))
        return tf.reshape(per_gate, (hid, 4 * hid))
    raise ValueError(f"variant '{variant.value}' has no weight-drop mask")


class _Weights(keras.layers.Layer):
    """Exchange of the Keras-layout weights with the shared numpy naming scheme."""

    def weight_vars(self) -> tuple[keras.Variable, keras.Variable, keras.Variable]:
        raise NotImplementedError

    def set_numpy(self, w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray) -> None:
        kernel, recurrent, b = self.weight_vars()
        kernel.assign(np.ascontiguousarray(w_ih.T))
        recurrent.assign(np.ascontiguousarray(w_hh.T))
        b.assign(bias)

    def get_numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        kernel, recurrent, b = (np.asarray(v.numpy()) for v in self.weight_vars())
        return np.ascontiguousarray(kernel.T), np.ascontiguousarray(recurrent.T), b.copy()


class VariantLSTM(_Weights):
    """The suite's LSTM layer; every mask arrives as a tensor (or None = not drawn)."""

    def __init__(self, input_size: int, hidden_size: int, variant: Variant, **kwargs):
        super().__init__(**kwargs)
        self.variant = variant
        h4 = 4 * hidden_size
        self.kernel = self.add_weight(shape=(input_size, h4), initializer="zeros", name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(hidden_size, h4), initializer="zeros", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(h4,), initializer="zeros", name="bias")

    def weight_vars(self) -> tuple[keras.Variable, keras.Variable, keras.Variable]:
        return self.kernel, self.recurrent_kernel, self.bias

    def forward(self, xs: tf.Tensor, h: tf.Tensor, c: tf.Tensor, in_mask: tf.Tensor | None = None,
                rec_mask: tf.Tensor | None = None, weight_mask: tf.Tensor | None = None,
                training: bool = False) -> recurrence.Loop:
        """xs (T, B, D) -> (outputs (T, B, H), h_T, c_T). Gal masks: in_mask/rec_mask; weight-drop:
        weight_mask. Without masks every variant runs the same fused loop as `none`, so a zero
        rate gives exactly the no-dropout numbers."""
        del training  # dropout is fully described by the masks
        kernel, u, bias = (tf.convert_to_tensor(v) for v in self.weight_vars())
        if weight_mask is not None:
            u = masked_recurrent_kernel(u, weight_mask, self.variant)
        if in_mask is None and rec_mask is None:
            return recurrence.run_fused(xs, h, c, kernel, u, bias)
        return _GAL_LOOPS[self.variant](xs, h, c, kernel, u, bias, in_mask, rec_mask)


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

    def weight_vars(self) -> tuple[keras.Variable, keras.Variable, keras.Variable]:
        cell = self.lstm.cell
        return cell.kernel, cell.recurrent_kernel, cell.bias

    def seed_generators(self) -> list[keras.random.SeedGenerator]:
        return [self.lstm.cell.seed_generator]

    def forward(self, xs: tf.Tensor, h: tf.Tensor, c: tf.Tensor, in_mask: tf.Tensor | None = None,
                rec_mask: tf.Tensor | None = None, weight_mask: tf.Tensor | None = None,
                training: bool = False) -> recurrence.Loop:
        if in_mask is not None or rec_mask is not None or weight_mask is not None:
            raise ValueError("keras3_builtin draws its own masks; none can be passed in")
        seq, h, c = self.lstm(tf.transpose(xs, (1, 0, 2)), initial_state=[h, c],
                              training=training)
        return tf.transpose(seq, (1, 0, 2)), h, c
