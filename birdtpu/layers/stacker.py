"""Layers of the stacking ensemble: per-class weights over models (LocallyConnected1D with kernel
size 1, removed from Keras 3), its one-hot initialiser, and the shifted-tanh output.

All have static shapes and no Python control flow on tensor values, so they compile with XLA.
"""

from __future__ import annotations

import keras
from keras import ops

_PKG = "birdtpu"


@keras.saving.register_keras_serializable(package=_PKG)
class OneHot(keras.initializers.Initializer):
    """Kernel (classes, inputs, filters) with 1 at input `index` and 0 elsewhere, for every class
    and filter: each class starts as a copy of one input (the stacker uses the models' mean)."""

    def __init__(self, index: int = -1):
        self.index = int(index)

    def __call__(self, shape, dtype=None):
        inputs = shape[1]
        hot = ops.one_hot(self.index % inputs, inputs, dtype=dtype or "float32")
        return ops.broadcast_to(ops.reshape(hot, (1, inputs, 1)), shape)

    def get_config(self):
        return {"index": self.index}


@keras.saving.register_keras_serializable(package=_PKG)
class PerClassWeighting(keras.layers.Layer):
    """(batch, classes, models) -> (batch, classes, filters) with separate weights for each class.

    Equivalent to tf_keras `LocallyConnected1D(filters, kernel_size=1)`, with the same weight
    layout (kernel (classes, models, filters), bias (classes, filters)), so weights copy across:
    out[b, c, f] = sum_m x[b, c, m] * kernel[c, m, f] + bias[c, f].
    """

    def __init__(self, filters: int = 1, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.use_bias = int(filters), bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def build(self, input_shape):
        classes, models = input_shape[-2:]
        if classes is None or models is None:
            raise ValueError(f"PerClassWeighting needs static (classes, models); got input shape {input_shape}")
        self.kernel = self.add_weight(shape=(classes, models, self.filters), name="kernel",
                                      initializer=self.kernel_initializer, constraint=self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(classes, self.filters), name="bias",
                                        initializer=self.bias_initializer, constraint=self.bias_constraint)

    def call(self, x):
        out = ops.einsum("bcm,cmf->bcf", x, self.kernel)
        return out + self.bias if self.use_bias else out

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint)}


@keras.saving.register_keras_serializable(package=_PKG)
class ShiftedTanh(keras.layers.Layer):
    """(tanh(scale * (x - offset)) + 1) / 2, which is sigmoid(2 * scale * (x - offset)).

    The Freesound 2019 stacker's output (offset 1.6, scale 1). Its input starts as a probability
    in [0, 1] (the models' mean, passed through identity weights), so the output starts in
    [0.04, 0.23]: the offset sets a low prior for rare multi-label positives (an input of 0 gives
    sigmoid(-3.2) = 0.04) and the rescaling maps tanh's (-1, 1) onto a probability for the binary
    cross-entropy. It is monotonic, so it starts with the mean's ranking and leaves it unchanged.
    """

    def __init__(self, offset: float = 1.6, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.offset, self.scale = float(offset), float(scale)

    def call(self, x):
        return (ops.tanh(self.scale * (x - self.offset)) + 1.0) / 2.0

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "offset": self.offset, "scale": self.scale}
