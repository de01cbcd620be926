"""Where the augmentations run: in the tf.data pipeline, or on the accelerator.

On a CPU, noise and MixUp in tf.data cost the pipeline half its rate; on a TPU or GPU the same ops
cost the accelerator microseconds. `augment.in_model: auto` moves them when the run has an
accelerator: noise, gain and shift into the model (its first layer, training only), MixUp and
CutMix into the train step (`birdtpu.train.mixstep`: they mix the targets too). Time stretch and
pitch shift (phase vocoder) and background mixing (it reads other files) stay in tf.data.
"""

from __future__ import annotations

import dataclasses

# the AugmentConfig probabilities of the augmentations that can move into the model
IN_MODEL = ("gauss_prob", "noise_prob", "pink_prob", "gain_prob", "shift_prob")
# the probabilities of what moves into the train step
IN_TRAIN_STEP = ("mixup_prob", "cutmix_prob")
PIPELINE_ONLY = ("stretch_prob", "pitch_prob")


def augment_in_model(augment, device: str) -> bool:
    """Whether the run puts noise, gain and shift in the model and MixUp/CutMix in the train step
    (`augment.in_model`: auto = on a TPU or GPU)."""
    if augment.in_model == "auto":
        return device in ("tpu", "gpu")
    return augment.in_model == "true"


def pipeline_augment(augment, in_model: bool):
    """The AugmentConfig the tf.data pipeline applies: without what runs in the model or step."""
    if not in_model:
        return augment
    return dataclasses.replace(augment, **dict.fromkeys(IN_MODEL + IN_TRAIN_STEP, 0.0))


def model_augment(augment):
    """The AugmentConfig of the model's waveform augmentation: only what can run there."""
    return dataclasses.replace(augment, **dict.fromkeys(PIPELINE_ONLY, 0.0))
