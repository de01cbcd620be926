"""Losses and optimizers from a TrainConfig (Keras 3 built-ins; the model outputs probabilities).

| train.loss | Keras loss                                                          |
|------------|---------------------------------------------------------------------|
| cce        | CategoricalCrossentropy(label_smoothing)                            |
| bce        | BinaryCrossentropy(label_smoothing)                                 |
| focal_bce  | BinaryFocalCrossentropy(gamma=focal_gamma, label_smoothing)         |
| focal_cce  | CategoricalFocalCrossentropy(gamma=focal_gamma, label_smoothing)    |
"""

from __future__ import annotations

import keras


def make_loss(train_cfg) -> keras.losses.Loss:
    """The loss named by `train.loss`, on probabilities (from_logits=False)."""
    smoothing, gamma = train_cfg.label_smoothing, train_cfg.focal_gamma
    if train_cfg.loss == "bce":
        return keras.losses.BinaryCrossentropy(label_smoothing=smoothing)
    if train_cfg.loss == "focal_bce":
        return keras.losses.BinaryFocalCrossentropy(gamma=gamma, label_smoothing=smoothing)
    if train_cfg.loss == "focal_cce":
        return keras.losses.CategoricalFocalCrossentropy(gamma=gamma, label_smoothing=smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)


def make_optimizer(train_cfg, learning_rate) -> keras.optimizers.Optimizer:
    """Adam or AdamW (decoupled weight decay `train.weight_decay`) with `learning_rate` (a schedule)."""
    if train_cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=train_cfg.weight_decay)
    return keras.optimizers.Adam(learning_rate)
