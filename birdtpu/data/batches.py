"""Batches of the tf.data input: in training the waveform augmentations, background mixing,
MixUp and CutMix, each batch with its own seed."""

from __future__ import annotations

import tensorflow as tf

from birdtpu.data.crops import AUTOTUNE, seed_stream, to_float
from birdtpu.data.sources import background_dataset
from birdtpu.layers.augment import BackgroundMix, CutMix, MixUp, WaveAugment, split_seed


def _augmenters(augment, background):
    """The batch-level layers an AugmentConfig asks for (None where inactive)."""
    if augment is None:
        return None, None, None, None
    wave = WaveAugment.from_augment_config(augment)
    mix = (
        BackgroundMix(augment.background_prob, augment.background_snr_db)
        if background is not None
        else None
    )
    mixup = (
        MixUp(augment.mixup_prob, augment.mixup_alpha, augment.mix_labels)
        if augment.mixup_prob > 0
        else None
    )
    cutmix = (
        CutMix(augment.cutmix_prob, augment.cutmix_alpha, augment.mix_labels)
        if augment.cutmix_prob > 0
        else None
    )
    return (wave if wave.active else None), mix, mixup, cutmix


def _float_waves(x):
    """`to_float` of a batch's waveforms (a tensor, or the "waveform" of an input dict)."""
    return {**x, "waveform": to_float(x["waveform"])} if isinstance(x, dict) else to_float(x)


def augmented_batches(
    clips,
    batch_size: int,
    training: bool,
    augment,
    background,
    seed,
    deterministic: bool,
    drop_remainder: bool,
    masked: bool = False,
):
    """Batch, then (training) the waveform augmentations, background, MixUp and CutMix per batch.
    `masked`: the clips' last element is their target mask, mixed as the targets are. A first
    element that is a dict (the waveform with clip inputs) is augmented at its "waveform"."""
    ds = clips.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    wave_aug, bg_mix, mixup, cutmix = _augmenters(augment if training else None, background)
    if not any((wave_aug, bg_mix, mixup, cutmix)):
        spec = ds.element_spec[0]
        if (spec["waveform"] if isinstance(spec, dict) else spec).dtype == tf.float32:
            return ds
        return ds.map(
            lambda *batch: (_float_waves(batch[0]), *batch[1:]),
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
    parts = (ds, seed_stream(seed, 2)) + ((background,) if bg_mix else ())

    def apply(batch, s, bg=None):
        x, target = batch[0], batch[1]
        wave = to_float(x["waveform"] if isinstance(x, dict) else x)
        middle, mask = (batch[2:-1], batch[-1:]) if masked else (batch[2:], ())
        seeds = split_seed(s, 4)
        if bg_mix:
            wave = bg_mix.augment((wave, bg), seeds[0])
        if wave_aug:
            wave = wave_aug.augment(wave, seeds[1])
        wave = {**x, "waveform": wave} if isinstance(x, dict) else wave
        if mixup:
            wave, target, *mask = mixup.augment((wave, target, *mask), seeds[2])
        if cutmix:
            wave, target, *mask = cutmix.augment((wave, target, *mask), seeds[3])
        return (wave, target, *middle, *mask)

    return tf.data.Dataset.zip(parts).map(
        apply, num_parallel_calls=AUTOTUNE, deterministic=deterministic
    )


def background_batches(
    augment, training, background, clip_samples, batch_size, sample_rate, seed, compression, log
):
    if not training or augment is None or augment.background_prob <= 0:
        return None
    return background_dataset(
        background if background is not None else augment.background,
        clip_samples,
        batch_size,
        sample_rate,
        seed,
        compression,
        log,
    )
