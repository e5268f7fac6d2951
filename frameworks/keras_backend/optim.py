"""SGD and Adam with PyTorch's exact update rules, gradient-norm clipping and coupled L2.

Written out rather than taken from `keras.optimizers` so both backends do the same arithmetic:
Keras' Adam puts epsilon outside the bias correction and its `weight_decay` is decoupled.
Order per step, as in PyTorch: clip the raw gradients to `clip_norm` (global norm, coefficient
clip/(norm+1e-6), only ever shrinking), then add weight_decay * w, then update.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from frameworks.spec import OptimSpec

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def clip_by_global_norm(grads: list[tf.Tensor], clip: float) -> list[tf.Tensor]:
    """torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6))."""
    norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]))
    coef = tf.minimum(1.0, clip / (norm + 1e-6))
    return [g * coef for g in grads]


class Optimizer:
    """Holds the optimiser state; `apply` runs inside the compiled train step."""

    def __init__(self, spec: OptimSpec, variables: Sequence[tf.Variable]):
        if spec.name not in ("sgd", "adam"):
            raise ValueError(f"optim.name={spec.name!r} is not one of: sgd, adam")
        if spec.clip_norm < 0 or spec.weight_decay < 0:
            raise ValueError("optim.clip_norm and optim.weight_decay must be >= 0")
        self.spec = spec
        self.variables = list(variables)
        self.step = tf.Variable(0.0, trainable=False, name="adam_step")
        self.m: list[tf.Variable] = []
        self.v: list[tf.Variable] = []
        if spec.name == "adam":
            for var in self.variables:
                self.m.append(tf.Variable(tf.zeros(var.shape), trainable=False))
                self.v.append(tf.Variable(tf.zeros(var.shape), trainable=False))

    def apply(self, grads: list[tf.Tensor], lr: tf.Tensor) -> None:
        grads = [tf.convert_to_tensor(g) for g in grads]  # embedding grads arrive as slices
        if self.spec.clip_norm > 0:
            grads = clip_by_global_norm(grads, self.spec.clip_norm)
        if self.spec.weight_decay > 0:
            grads = [g + self.spec.weight_decay * tf.convert_to_tensor(var)
                     for g, var in zip(grads, self.variables, strict=True)]
        if self.spec.name == "sgd":
            for var, g in zip(self.variables, grads, strict=True):
                var.assign_sub(lr * g)
            return
        step = self.step.assign_add(1.0)
        bc1 = 1.0 - tf.pow(_BETA1, step)
        bc2_sqrt = tf.sqrt(1.0 - tf.pow(_BETA2, step))
        for var, g, m, v in zip(self.variables, grads, self.m, self.v, strict=True):
            m.assign(_BETA1 * m + (1.0 - _BETA1) * g)
            v.assign(_BETA2 * v + (1.0 - _BETA2) * tf.square(g))
            var.assign_sub((lr / bc1) * m / (tf.sqrt(v) / bc2_sqrt + _EPS))
