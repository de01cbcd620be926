"""MixUp and CutMix inside the train step, on the accelerator, for either Keras backend.

They mix the targets as well as the inputs, so they cannot be layers of the model: the model's
own `train_step` is wrapped to mix each batch (waveforms and targets) before the step runs. The
seed of a batch is (runtime seed + replica, optimizer step): a resumed run mixes the same way,
and under tf.distribute each replica mixes its own examples differently.
"""

from __future__ import annotations

import keras

from birdtpu.layers.augment import CutMix, MixUp
from birdtpu.layers.xp import namespace

_REPLICA_STRIDE = 1_000_003


class BatchMix:
    """The MixUp and CutMix an AugmentConfig asks for, applied to a batch with an explicit step."""

    def __init__(self, augment, seed: int):
        self.seed = int(seed)
        self.layers = []
        if augment.mixup_prob > 0:
            self.layers.append(MixUp(augment.mixup_prob, augment.mixup_alpha, augment.mix_labels))
        if augment.cutmix_prob > 0:
            self.layers.append(
                CutMix(augment.cutmix_prob, augment.cutmix_alpha, augment.mix_labels)
            )

    @property
    def active(self) -> bool:
        return bool(self.layers)

    def __call__(self, x, y, step, replica=0, w=None):
        """(x, y) mixed with the seed of (`step`, `replica`); x: (batch, samples) waveforms (or a
        dict of them and clip inputs). With sample weights `w` (per clip, or the (batch, classes)
        target masks): (x, y, w), the weights mixed as the targets are."""
        wave = x["waveform"] if isinstance(x, dict) else x
        xp = namespace(wave)
        base = xp.stack(
            [
                xp.cast(replica, "int32") * _REPLICA_STRIDE + (self.seed % _REPLICA_STRIDE),
                xp.cast(xp.mod(step, 2**31 - 1), "int32"),
            ]
        )
        seeds = xp.split(xp.seed(base), len(self.layers))
        parts = (x, xp.cast(y, wave.dtype)) + (() if w is None else (xp.cast(w, wave.dtype),))
        for i, layer in enumerate(self.layers):
            parts = layer.augment(parts, seeds[i])
        return parts


def _mixed(data, mix: BatchMix, step, replica=0):
    x, y, w = keras.utils.unpack_x_y_sample_weight(data)
    return mix(x, y, step, replica, w)


def _iterations_index(model) -> int:
    """Where the optimizer's step counter sits in the JAX train step's optimizer variables."""
    target = model.optimizer.iterations
    for i, v in enumerate(model.optimizer.variables):
        if v is target or v.path == target.path:
            return i
    raise RuntimeError(f"{model.optimizer.name}: no iterations variable among its variables")


def mix_in_train_step(model, mix: BatchMix):
    """Wrap `model.train_step` (after compile) so that every training batch is mixed first."""
    if not mix.active:
        return model
    inner = model.train_step
    if keras.backend.backend() == "jax":
        index = _iterations_index(model)

        def train_step(state, data):
            step = state[2][index]  # (trainable, non-trainable, optimizer, metrics) variables
            return inner(state, _mixed(data, mix, step))

    else:
        import tensorflow as tf

        def train_step(data):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            return inner(_mixed(data, mix, model.optimizer.iterations, replica))

    model.train_step = train_step
    return model
