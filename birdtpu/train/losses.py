"""Losses and optimizers from a TrainConfig (Keras 3 formulas; the model outputs probabilities).

| train.loss | loss                                                                |
|------------|---------------------------------------------------------------------|
| cce        | CategoricalCrossentropy(label_smoothing)                            |
| bce        | PerClassBinaryLoss: binary cross-entropy per (clip, class)          |
| focal_bce  | PerClassBinaryLoss(gamma=focal_gamma): binary focal, per (clip, class) |
| focal_cce  | CategoricalFocalCrossentropy(gamma=focal_gamma, label_smoothing)    |

The binary losses keep one term per (clip, class), so a (batch, classes) sample weight from the
input pipeline (the target mask, birdtpu.data.crops) weighs each class's term on its own: a class
of weight 0 adds nothing to the loss or its gradient. Without a weight they equal Keras'
BinaryCrossentropy / BinaryFocalCrossentropy (the mean over clips and classes). The categorical
losses are one term per clip: a (batch, classes) weight scales a clip's term by its mean.
"""

from __future__ import annotations

import keras
from keras import ops

from birdtpu.saving import register


@register
class PerClassBinaryLoss(keras.losses.Loss):
    """Binary cross-entropy (gamma 0) or binary focal cross-entropy (gamma > 0) on probabilities,
    one value per (clip, class): Keras' own formulas over a last axis of size one."""

    def __init__(
        self,
        gamma: float = 0.0,
        label_smoothing: float = 0.0,
        name: str = "per_class_binary",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.gamma, self.label_smoothing = float(gamma), float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = ops.expand_dims(ops.cast(y_true, y_pred.dtype), -1)
        y_pred = ops.expand_dims(y_pred, -1)
        if self.gamma > 0:
            return keras.losses.binary_focal_crossentropy(
                y_true, y_pred, gamma=self.gamma, label_smoothing=self.label_smoothing
            )
        return keras.losses.binary_crossentropy(
            y_true, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "gamma": self.gamma,
            "label_smoothing": self.label_smoothing,
        }


def make_loss(train_cfg) -> keras.losses.Loss:
    """The loss named by `train.loss`, on probabilities (from_logits=False)."""
    smoothing, gamma = train_cfg.label_smoothing, train_cfg.focal_gamma
    if train_cfg.loss == "bce":
        return PerClassBinaryLoss(label_smoothing=smoothing)
    if train_cfg.loss == "focal_bce":
        return PerClassBinaryLoss(gamma=gamma, label_smoothing=smoothing)
    if train_cfg.loss == "focal_cce":
        return keras.losses.CategoricalFocalCrossentropy(gamma=gamma, label_smoothing=smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)


def make_optimizer(train_cfg, learning_rate) -> keras.optimizers.Optimizer:
    """Adam or AdamW (decoupled weight decay `train.weight_decay`) with `learning_rate` (a schedule)."""
    if train_cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=train_cfg.weight_decay)
    return keras.optimizers.Adam(learning_rate)
