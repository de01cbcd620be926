"""Distillation of a teacher's embeddings into a student's pooled features.

`EmbeddingDistiller` wraps a built student (waveform -> probabilities) and adds, in training
and where the batch carries `teacher_embedding`,

    weight * mean over clips with a non-zero teacher vector of (1 - cos(Dense(d)(pooled), teacher))

to the compiled loss through `add_loss` (collected by `fit` under TensorFlow and JAX alike).
It returns the student's probabilities only, so the compiled loss, metrics and validation see
one output; `student` is the inference model to save as model.keras.
"""

from __future__ import annotations

import copy

import keras
from keras import ops

from birdtpu.errors import ConfigError
from birdtpu.saving import register

EPS = 1e-6


def _unit(x):
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), EPS**2))


def cosine_distillation_loss(projected, teacher):
    """Mean over the rows whose `teacher` vector is non-zero of 1 - cos(projected, teacher)
    (float32 scalar; 0 where no row has one). Both (batch, d)."""
    projected, teacher = ops.cast(projected, "float32"), ops.cast(teacher, "float32")
    cos = ops.sum(_unit(projected) * _unit(teacher), axis=-1)
    known = ops.cast(ops.sum(ops.square(teacher), axis=-1) > 0, "float32")
    return ops.sum(known * (1.0 - cos)) / ops.maximum(ops.sum(known), 1.0)


@register
class EmbeddingDistiller(keras.Model):
    """A student plus a Dense(`dim`) projection of its layer `feature_layer`'s (batch, features)
    output, trained towards the teacher's embedding with weight `weight` (see the module).

    Inputs: {"waveform": (batch, samples), "teacher_embedding": (batch, dim)} in training (plus
    a student's other named inputs, e.g. clip features); a waveform tensor or a dict without
    "teacher_embedding" (validation, prediction) runs the student alone. Outputs: the
    student's probabilities.
    """

    def __init__(self, student, feature_layer: str, dim: int, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if weight < 0:
            raise ConfigError(f"embedding distillation weight {weight} must be >= 0")
        try:
            features = student.get_layer(feature_layer).output
        except ValueError:
            raise ConfigError(
                f"{student.name}: no layer {feature_layer!r} to take pooled features from"
            ) from None
        if len(features.shape) != 2:
            raise ConfigError(
                f"{student.name}: layer {feature_layer!r} gives {tuple(features.shape)}, not "
                "(batch, features)"
            )
        self.student = student
        self.feature_layer, self.dim, self.weight = feature_layer, int(dim), float(weight)
        self.features = keras.Model(student.inputs, [student.outputs[0], features])
        self.projection = keras.layers.Dense(self.dim, dtype="float32", name="projection")
        self.projection.build(features.shape)
        self.built = True

    def call(self, inputs, training=None):
        teacher = None
        if isinstance(inputs, dict):
            inputs = dict(inputs)
            teacher = inputs.pop("teacher_embedding", None)
            if len(self.student.inputs) == 1:
                inputs = inputs["waveform"]
        if teacher is None or not training:
            return self.student(inputs, training=training)
        probs, pooled = self.features(inputs, training=training)
        projected = self.projection(ops.cast(pooled, "float32"))
        self.add_loss(self.weight * cosine_distillation_loss(projected, teacher))
        return probs

    def get_config(self):
        return {
            **super().get_config(),
            "student": keras.saving.serialize_keras_object(self.student),
            "feature_layer": self.feature_layer,
            "dim": self.dim,
            "weight": self.weight,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing consumes the student's nested config
        student = keras.saving.deserialize_keras_object(config.pop("student"))
        return cls(student, **config)
