"""Knowledge distillation from a teacher's outputs, in `keras.ops` (runs on every backend).

The labels are multilabel, so a temperature softens each class on its own: sigmoid(logit / T),
not a softmax over classes. birdtpu models output probabilities (train/losses.py), so student
probabilities are turned back into logits, clipped to [epsilon, 1 - epsilon] first.
"""

from __future__ import annotations

import keras
from keras import ops

from birdtpu.errors import ConfigError
from birdtpu.saving import register

EPSILON = 1e-7  # as Keras' BinaryCrossentropy clips probabilities


def _logit(p, epsilon: float = EPSILON):
    p = ops.clip(p, epsilon, 1.0 - epsilon)
    return ops.log(p) - ops.log1p(-p)


def _bce_with_logits(targets, logits):
    """Per-sample mean over classes of -(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))), stably."""
    per_class = ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
    return ops.mean(per_class, axis=-1)


def soft_targets(teacher, temperature: float = 1.0, from_logits: bool = True):
    """The teacher's outputs softened per class: sigmoid(z / temperature).

    z is `teacher` itself with `from_logits`, else the logit of the teacher's probabilities
    (clipped to [EPSILON, 1 - EPSILON]). temperature 1 returns the teacher's probabilities.
    """
    teacher = ops.convert_to_tensor(teacher, "float32")
    z = teacher if from_logits else _logit(teacher)
    return ops.sigmoid(z / temperature)


@register
class DistillationLoss(keras.losses.Loss):
    """Hard labels and a teacher's soft targets, on a model that outputs probabilities.

    y_true is (batch, 2 * classes): the hard targets y, then the teacher's outputs (logits with
    `teacher_from_logits`, else probabilities); y_pred is the student's probabilities p.
    With z = logit(clip(p)), BCE(t, s) the mean over classes of -(t log s + (1 - t) log(1 - s)):

        loss = alpha * BCE(y, sigmoid(z)) + (1 - alpha) * T^2 * BCE(soft_targets(teacher, T), sigmoid(z / T))

    The T^2 factor (Hinton et al. 2015) keeps the soft term's gradients the same size whatever T.
    alpha 1: plain BCE on the hard targets; alpha 0: the teacher alone.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        temperature: float = 2.0,
        teacher_from_logits: bool = False,
        name: str = "distillation",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"DistillationLoss: alpha must lie in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ConfigError(f"DistillationLoss: temperature must be above 0, got {temperature}")
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.teacher_from_logits = bool(teacher_from_logits)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "float32")
        classes = ops.shape(y_pred)[-1]
        hard, teacher = y_true[..., :classes], y_true[..., classes:]
        z = _logit(ops.cast(y_pred, "float32"))
        t = self.temperature
        soft = soft_targets(teacher, t, self.teacher_from_logits)
        return self.alpha * _bce_with_logits(hard, z) + (1.0 - self.alpha) * t * t * (
            _bce_with_logits(soft, z / t)
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "temperature": self.temperature,
            "teacher_from_logits": self.teacher_from_logits,
        }
