"""The Freesound 2019 stacking network and its layers: per-class weights over models
(LocallyConnected1D with kernel size 1, removed from Keras 3), its one-hot initialiser, and the
shifted-tanh output.

All have static shapes and no Python control flow on tensor values, so they compile with XLA.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from birdtpu.saving import register


@register
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


@register
class PerClassWeighting(keras.layers.Layer):
    """(batch, classes, models) -> (batch, classes, filters) with separate weights for each class.

    Equivalent to tf_keras `LocallyConnected1D(filters, kernel_size=1)`, with the same weight
    layout (kernel (classes, models, filters), bias (classes, filters)), so weights copy across:
    out[b, c, f] = sum_m x[b, c, m] * kernel[c, m, f] + bias[c, f].
    """

    def __init__(
        self,
        filters: int = 1,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters, self.use_bias = int(filters), bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def build(self, input_shape):
        classes, models = input_shape[-2:]
        if classes is None or models is None:
            raise ValueError(
                f"PerClassWeighting needs static (classes, models); got input shape {input_shape}"
            )
        self.kernel = self.add_weight(
            shape=(classes, models, self.filters),
            name="kernel",
            initializer=self.kernel_initializer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(classes, self.filters),
                name="bias",
                initializer=self.bias_initializer,
                constraint=self.bias_constraint,
            )

    def call(self, x):
        out = ops.einsum("bcm,cmf->bcf", x, self.kernel)
        return out + self.bias if self.use_bias else out

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }


@register
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


@register
class Stacker(keras.Model):
    """The Freesound 2019 stacking network: (rows, classes, models) -> (rows, classes).

    predictions ++ their mean -> PerClassWeighting (one-hot on the mean, unit norm over models)
    -> Dense(classes) started at identity (label correlations) -> ShiftedTanh(offset, scale).
    At initialisation it ranks exactly as the plain mean. `class_names` and `model_names` (the
    order of the inputs) travel with the saved model.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        model_names: Sequence[str],
        offset: float = 1.6,
        scale: float = 1.0,
        **kwargs,
    ):
        n_classes, n_models = len(class_names), len(model_names)
        inputs = keras.Input((n_classes, n_models), name="predictions")
        x = keras.layers.Concatenate(name="with_mean")(
            [inputs, keras.ops.mean(inputs, axis=-1, keepdims=True)]
        )
        x = PerClassWeighting(
            1,
            kernel_initializer=OneHot(-1),
            kernel_constraint=keras.constraints.UnitNorm(axis=1),
            name="model_weights",
        )(x)
        x = keras.layers.Reshape((n_classes,), name="flatten")(x)
        x = keras.layers.Dense(n_classes, kernel_initializer="identity", name="label_mixing")(x)
        outputs = ShiftedTanh(offset, scale, name="head")(x)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.class_names, self.model_names = list(class_names), list(model_names)
        self.offset, self.scale = float(offset), float(scale)

    def get_config(self):
        return {
            "class_names": self.class_names,
            "model_names": self.model_names,
            "offset": self.offset,
            "scale": self.scale,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)
