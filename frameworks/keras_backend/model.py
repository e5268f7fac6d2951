"""The matched network: embedding -> stacked LSTM/GRU -> output dropout -> dense decoder.

Time-major ids in (the runner transposes the batch-first ids in numpy: TensorFlow's oneDNN
build has no int32 transpose and logs an error for it), time-major activations between layers.
Every mask arrives in a dict of tensors keyed by the names of the mask naming scheme; a missing
key means "not drawn" (rate 0, or evaluation), so the same code computes the no-dropout network.
Language model: logits (B*T, C) in row-major (B, T) order; classifier: logits (B, C) from the
last time step (inputs are pre-padded, so it is a real token).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from frameworks.compute import DEFAULT, Compute
from frameworks.keras_backend.compute import record
from frameworks.keras_backend.layers import BuiltinLSTM, VariantRNN
from frameworks.spec import ModelSpec, OutputMode, TaskKind, Variant

States = list[tuple[tf.Tensor, tf.Tensor]]  # (h, c) per layer; a GRU's c stays zero


class Net(keras.layers.Layer):
    """Weights plus a pure forward function of (ids, states, masks)."""

    def __init__(self, spec: ModelSpec, seed: int, compute: Compute = DEFAULT, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.paths = record()  # what computed the layers, noted at tracing
        s = spec
        self.builtin = s.variant is Variant.KERAS3_BUILTIN
        self.embedding = self.add_weight(
            shape=(s.vocab_size, s.embed_size), initializer="zeros", name="embedding"
        )
        self.lstms: list[VariantRNN | BuiltinLSTM] = []
        for k in range(s.num_layers):
            d = s.embed_size if k == 0 else s.hidden_size
            if self.builtin:
                layer = BuiltinLSTM(d, s.hidden_size, s.input_dropout, s.recurrent_dropout,
                                    seed=seed * 16 + k, name=f"lstm_{k}")
            else:
                layer = VariantRNN(d, s.hidden_size, s, k, compute, self.paths, name=f"lstm_{k}")
            self.lstms.append(layer)
        self.decoder_weight = None
        if not s.tie_weights:
            self.decoder_weight = self.add_weight(
                shape=(s.num_outputs, s.hidden_size), initializer="zeros", name="decoder_weight"
            )
        self.decoder_bias = self.add_weight(
            shape=(s.num_outputs,), initializer="zeros", name="decoder_bias"
        )
        self.output_dropout = None
        if self.builtin and s.output_dropout > 0:
            # Part 3's Keras model: a plain Dropout layer (a new mask per time step); the
            # variational output mode shares it over time through noise_shape.
            lm_locked = (s.task_kind is TaskKind.LANGUAGE_MODEL
                         and s.output_mode is OutputMode.VARIATIONAL)
            self.output_dropout = keras.layers.Dropout(
                s.output_dropout,
                noise_shape=(None, 1, s.hidden_size) if lm_locked else None,
                seed=seed * 16 + 15,
            )

    def seed_generators(self) -> list[keras.random.SeedGenerator]:
        """The library's own RNG states (keras3_builtin only)."""
        gens = [g for layer in self.lstms if isinstance(layer, BuiltinLSTM)
                for g in layer.seed_generators()]
        if self.output_dropout is not None:
            gens.append(self.output_dropout.seed_generator)
        return gens

    def zero_states(self, batch: int) -> States:
        z = np.zeros((batch, self.spec.hidden_size), np.float32)
        return [(tf.constant(z), tf.constant(z)) for _ in self.lstms]

    def forward(self, ids: tf.Tensor, states: States, masks: dict[str, tf.Tensor],
                training: bool = False) -> tuple[tf.Tensor, States]:
        """ids (T, B) int32 -> logits, final (h, c) per layer."""
        seq = tf.gather(self.embedding, ids)  # (T, B, E)
        if "embedding" in masks:  # word-type dropout: row v of the matrix scaled by mask[v]
            seq = seq * tf.gather(masks["embedding"], ids)
        new_states: States = []
        for k, layer in enumerate(self.lstms):
            seq, h, c = layer.forward(seq, *states[k], masks, training=training)
            new_states.append((h, c))
        if self.spec.task_kind is TaskKind.CLASSIFIER:
            out = new_states[-1][0]  # (B, H): h at the last step
        else:
            out = tf.transpose(seq, (1, 0, 2))  # (B, T, H)
        if "output" in masks:
            out = out * masks["output"]
        if self.output_dropout is not None:
            out = self.output_dropout(out, training=training)
        out = tf.reshape(out, (-1, self.spec.hidden_size))
        weight = self.embedding if self.decoder_weight is None else self.decoder_weight
        logits = tf.matmul(out, weight, transpose_b=True) + self.decoder_bias
        return logits, new_states

    # -- weights in the shared numpy naming scheme -----------------------------------------
    def set_numpy(self, weights: dict[str, np.ndarray]) -> None:
        self.embedding.assign(weights["embedding"])
        for k, layer in enumerate(self.lstms):
            layer.set_numpy({n: weights[f"rnn.{k}.{n}"] for n in layer.weight_vars()})
        if self.decoder_weight is not None:
            self.decoder_weight.assign(weights["decoder.weight"])
        self.decoder_bias.assign(weights["decoder.bias"])

    def get_numpy(self) -> dict[str, np.ndarray]:
        out = {"embedding": np.array(self.embedding.numpy())}
        for k, layer in enumerate(self.lstms):
            out.update({f"rnn.{k}.{name}": v for name, v in layer.get_numpy().items()})
        if self.decoder_weight is not None:
            out["decoder.weight"] = np.array(self.decoder_weight.numpy())
        out["decoder.bias"] = np.array(self.decoder_bias.numpy())
        return out
