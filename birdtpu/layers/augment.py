"""Augmentation layers: WaveAugment, BackgroundMix, MixUp and CutMix, on either Keras backend.

They wrap the functions of `birdtpu.layers.wave_ops` and `birdtpu.layers.mix_ops`: they act only
with `training=True` and then draw their seeds from a Keras SeedGenerator. `layer.augment(x,
seed)` is the same transform with an explicit int32 [2] seed; it also runs in a `tf.data` map
under any backend (the pipeline calls it there), where the functions use TensorFlow's ops.
"""

from __future__ import annotations

import keras

from birdtpu.layers.mix_ops import LABEL_MODES, cutmix, mixup
from birdtpu.layers.wave_ops import (
    gain,
    gaussian_noise,
    gaussian_noise_snr,
    mix_background,
    pink_noise_snr,
    pitch_shift,
    time_shift,
    time_stretch,
)
from birdtpu.layers.xp import namespace, split_seed
from birdtpu.saving import register


def _pair(values) -> list[float]:
    lo, hi = values
    return [float(lo), float(hi)]


class _Augmentation(keras.layers.Layer):
    """Acts only in training: `augment(inputs, seed)` (of the subclass) with a seed drawn per call."""

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        seed = self.seed_generator.next()
        return self.augment(inputs, namespace(seed).seed(seed))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@register
class WaveAugment(_Augmentation):
    """(batch, samples) waveforms: gain, time shift, time stretch, pitch shift, Gaussian noise at a
    fixed level and at an SNR, pink noise at an SNR; each with its own probability per example."""

    def __init__(
        self,
        gain_prob=0.0,
        gain_db=(-6.0, 6.0),
        shift_prob=0.0,
        shift_max=0.5,
        shift_mode="roll",
        stretch_prob=0.0,
        stretch_rate=(0.8, 1.25),
        pitch_prob=0.0,
        pitch_semitones=(-2.0, 2.0),
        gauss_prob=0.0,
        gauss_std=(0.001, 0.015),
        noise_prob=0.0,
        noise_snr_db=(10.0, 40.0),
        pink_prob=0.0,
        pink_snr_db=(10.0, 40.0),
        seed=None,
        **kwargs,
    ):
        super().__init__(seed, **kwargs)
        if shift_mode not in ("roll", "pad"):
            raise ValueError(f"shift_mode: {shift_mode!r} is not 'roll' or 'pad'")
        self.gain_prob, self.gain_db = float(gain_prob), _pair(gain_db)
        self.shift_prob, self.shift_max, self.shift_mode = (
            float(shift_prob),
            float(shift_max),
            shift_mode,
        )
        self.stretch_prob, self.stretch_rate = float(stretch_prob), _pair(stretch_rate)
        self.pitch_prob, self.pitch_semitones = float(pitch_prob), _pair(pitch_semitones)
        self.gauss_prob, self.gauss_std = float(gauss_prob), _pair(gauss_std)
        self.noise_prob, self.noise_snr_db = float(noise_prob), _pair(noise_snr_db)
        self.pink_prob, self.pink_snr_db = float(pink_prob), _pair(pink_snr_db)

    @classmethod
    def from_augment_config(cls, cfg, seed=None, **kwargs):
        """The layer for an AugmentConfig's waveform settings."""
        names = (
            "gain_prob",
            "gain_db",
            "shift_prob",
            "shift_max",
            "shift_mode",
            "stretch_prob",
            "stretch_rate",
            "pitch_prob",
            "pitch_semitones",
            "gauss_prob",
            "gauss_std",
            "noise_prob",
            "noise_snr_db",
            "pink_prob",
            "pink_snr_db",
        )
        return cls(**{k: getattr(cfg, k) for k in names}, seed=seed, **kwargs)

    def _steps(self):
        return [
            (self.gain_prob, lambda w, s: gain(w, s, self.gain_prob, self.gain_db)),
            (
                self.shift_prob,
                lambda w, s: time_shift(w, s, self.shift_prob, self.shift_max, self.shift_mode),
            ),
            (
                self.stretch_prob,
                lambda w, s: time_stretch(w, s, self.stretch_prob, self.stretch_rate),
            ),
            (
                self.pitch_prob,
                lambda w, s: pitch_shift(w, s, self.pitch_prob, self.pitch_semitones),
            ),
            (self.gauss_prob, lambda w, s: gaussian_noise(w, s, self.gauss_prob, self.gauss_std)),
            (
                self.noise_prob,
                lambda w, s: gaussian_noise_snr(w, s, self.noise_prob, self.noise_snr_db),
            ),
            (self.pink_prob, lambda w, s: pink_noise_snr(w, s, self.pink_prob, self.pink_snr_db)),
        ]

    @property
    def active(self) -> bool:
        """Whether any transform has a probability above 0."""
        return any(prob > 0 for prob, _ in self._steps())

    def augment(self, wave, seed):
        """The transforms with an explicit seed."""
        steps = self._steps()
        seeds = split_seed(seed, len(steps))
        for i, (prob, step) in enumerate(steps):
            if prob > 0:
                wave = step(wave, seeds[i])
        return wave

    def get_config(self):
        return {
            **super().get_config(),
            "gain_prob": self.gain_prob,
            "gain_db": self.gain_db,
            "shift_prob": self.shift_prob,
            "shift_max": self.shift_max,
            "shift_mode": self.shift_mode,
            "stretch_prob": self.stretch_prob,
            "stretch_rate": self.stretch_rate,
            "pitch_prob": self.pitch_prob,
            "pitch_semitones": self.pitch_semitones,
            "gauss_prob": self.gauss_prob,
            "gauss_std": self.gauss_std,
            "noise_prob": self.noise_prob,
            "noise_snr_db": self.noise_snr_db,
            "pink_prob": self.pink_prob,
            "pink_snr_db": self.pink_snr_db,
        }


@register
class BackgroundMix(_Augmentation):
    """(waveforms, background clips) of the same shape -> waveforms with background added at an SNR."""

    def __init__(self, prob=0.5, snr_db=(3.0, 30.0), seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        self.prob, self.snr_db = float(prob), _pair(snr_db)

    def augment(self, inputs, seed):
        """The mixing with an explicit seed."""
        wave, background = inputs
        return mix_background(wave, background, seed, self.prob, self.snr_db)

    def call(self, inputs, training=None):
        return super().call(inputs, training) if training else inputs[0]

    def get_config(self):
        return {**super().get_config(), "prob": self.prob, "snr_db": self.snr_db}


class _Mix(_Augmentation):
    def __init__(self, prob=0.5, alpha=0.5, labels="weight", seed=None, **kwargs):
        super().__init__(seed, **kwargs)
        if labels not in LABEL_MODES:
            raise ValueError(f"labels: {labels!r} is not one of {LABEL_MODES}")
        self.prob, self.alpha, self.labels = float(prob), float(alpha), labels

    def get_config(self):
        return {
            **super().get_config(),
            "prob": self.prob,
            "alpha": self.alpha,
            "labels": self.labels,
        }


@register
class MixUp(_Mix):
    """(x, targets) -> (x, targets) mixed per example (see `mixup`); x: waveforms or spectrograms."""

    def augment(self, inputs, seed):
        """MixUp with an explicit seed; `inputs` (x, targets[, target masks])."""
        x, y, *w = inputs
        return mixup(x, y, seed, self.prob, self.alpha, self.labels, *w)


@register
class CutMix(_Mix):
    """(x, targets) -> (x, targets), a time segment pasted per example (see `cutmix`)."""

    def __init__(self, prob=0.5, alpha=2.5, labels="weight", axis=None, seed=None, **kwargs):
        super().__init__(prob, alpha, labels, seed, **kwargs)
        self.axis = axis

    def augment(self, inputs, seed):
        """CutMix with an explicit seed; `inputs` (x, targets[, target masks])."""
        x, y, *w = inputs
        return cutmix(x, y, seed, self.prob, self.alpha, self.labels, self.axis, *w)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
