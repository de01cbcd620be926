"""Where the waveform augmentations run: in the tf.data pipeline, or inside the model.

On a CPU, noise and gain in tf.data cost the pipeline half its rate; on a TPU or GPU the same ops
inside the model cost the accelerator microseconds. `augment.in_model: auto` puts them in the
model when the run has an accelerator. Time stretch and pitch shift (phase vocoder), background
mixing (it reads other files) and MixUp/CutMix (they mix the targets too) stay in tf.data.
"""

from __future__ import annotations

import dataclasses

# the AugmentConfig probabilities of the augmentations that can move into the model
IN_MODEL = ("gauss_prob", "noise_prob", "pink_prob", "gain_prob", "shift_prob")
PIPELINE_ONLY = ("stretch_prob", "pitch_prob")


def augment_in_model(augment, device: str) -> bool:
    """Whether the run puts noise, gain and shift in the model (`augment.in_model`: auto = on a
    TPU or GPU)."""
    if augment.in_model == "auto":
        return device in ("tpu", "gpu")
    return augment.in_model == "true"


def pipeline_augment(augment, in_model: bool):
    """The AugmentConfig the tf.data pipeline applies: without what runs in the model."""
    return dataclasses.replace(augment, **dict.fromkeys(IN_MODEL, 0.0)) if in_model else augment


def model_augment(augment):
    """The AugmentConfig of the model's waveform augmentation: only what can run there."""
    return dataclasses.replace(augment, **dict.fromkeys(PIPELINE_ONLY, 0.0))
