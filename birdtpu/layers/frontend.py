"""The model's front: waveform -> mel power (kapre) -> per-example dB -> per-example normalisation
-> SpecAugment masks (training only) -> image for an ImageNet backbone.

`frontend(cfg, sample_rate, augment)` builds it as one Sequential from the config.

All layers run in float32 (also under a mixed-precision policy), have static shapes and no
Python control flow on tensor values, so they compile with XLA as on a TPU. Nothing depends on
the other clips of a batch: every max, mean and floor is taken per example.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from kapre import STFT, ApplyFilterbank, Magnitude
from keras import ops

from birdtpu.saving import register


@register
class MelSpectrogram(keras.layers.Layer):
    """(batch, samples) waveform -> (batch, n_mels, frames, 1) mel spectrogram of |STFT|^power.

    kapre STFT (Hann window), magnitude and mel filterbank (librosa's, Slaney-normalised; Slaney or
    HTK mel scale), as `librosa.feature.melspectrogram(center=True, pad_mode="constant")`: frames
    are centred with n_fft // 2 zeros each side and the first `frames` are kept.
    hop = samples // (frames - 1) when hop_length is 0. power 2: power, 1: magnitude.
    """

    def __init__(
        self,
        samples: int,
        sample_rate: int,
        frames: int = 384,
        n_fft: int = 2048,
        win_length: int = 0,
        hop_length: int = 0,
        n_mels: int = 128,
        fmin: float = 20.0,
        fmax: float = 16000.0,
        htk: bool = False,
        power: float = 2.0,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.samples, self.sample_rate, self.frames = int(samples), int(sample_rate), int(frames)
        self.n_fft, self.win_length = int(n_fft), int(win_length or n_fft)
        self.hop_length = int(hop_length or samples // (frames - 1))
        self.n_mels, self.fmin, self.fmax, self.htk = (
            int(n_mels),
            float(fmin),
            float(fmax),
            bool(htk),
        )
        self.power = float(power)
        if 1 + self.samples // self.hop_length < self.frames:
            raise ValueError(
                f"{self.frames} frames do not fit {self.samples} samples at hop {self.hop_length}"
            )
        self.stft = STFT(
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            window_name="hann_window",
            dtype="float32",
        )
        self.magnitude = Magnitude(dtype="float32")
        self.mel = ApplyFilterbank(
            type="mel",
            dtype="float32",
            filterbank_kwargs={
                "sample_rate": self.sample_rate,
                "n_freq": self.n_fft // 2 + 1,
                "n_mels": self.n_mels,
                "f_min": self.fmin,
                "f_max": self.fmax,
                "htk": self.htk,
                "norm": "slaney",
            },
        )

    def build(self, input_shape):
        # the kapre sublayers hold no weights: nothing to create
        for layer in (self.stft, self.magnitude, self.mel):
            layer.built = True
        self.built = True

    def call(self, waveform):
        pad = self.n_fft // 2
        x = ops.pad(ops.cast(waveform, "float32"), [[0, 0], [pad, pad]])[:, :, None]
        mag = self.magnitude(self.stft(x))  # (batch, time, freq, 1)
        spec = ops.square(mag) if self.power == 2.0 else ops.power(mag, self.power)
        mel = self.mel(spec)[:, : self.frames]  # (batch, frames, mels, 1)
        return ops.transpose(mel, (0, 2, 1, 3))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_mels, self.frames, 1)

    def get_config(self):
        return {
            **super().get_config(),
            "samples": self.samples,
            "sample_rate": self.sample_rate,
            "frames": self.frames,
            "n_fft": self.n_fft,
            "win_length": self.win_length,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "fmin": self.fmin,
            "fmax": self.fmax,
            "htk": self.htk,
            "power": self.power,
        }


@register
class MelSpectrogramTflite(MelSpectrogram):
    """`MelSpectrogram` with the magnitude taken before any transpose, so TFLite converts it.

    Same configuration, same numbers: tf.signal.stft (periodic Hann window) on the centred,
    zero-padded waveform, |X|^power, the same mel filterbank, (batch, n_mels, frames, 1).
    """

    def stft_magnitude(self, waveform):
        """(batch, samples) -> |STFT| (batch, frames, n_fft // 2 + 1)."""
        pad = self.n_fft // 2
        x = tf.pad(tf.cast(waveform, tf.float32), [[0, 0], [pad, pad]])
        x = x[
            :, : (self.frames - 1) * self.hop_length + self.win_length
        ]  # the samples of `frames` frames
        return tf.abs(
            tf.signal.stft(
                x, self.win_length, self.hop_length, self.n_fft, window_fn=tf.signal.hann_window
            )
        )

    def mel_from_magnitude(self, mag):
        """|STFT| (batch, frames, freq) -> mel (batch, n_mels, frames, 1)."""
        spec = tf.square(mag) if self.power == 2.0 else tf.pow(mag, self.power)
        mel = tf.matmul(spec, tf.cast(self.mel.filterbank, tf.float32))  # (batch, frames, mels)
        return tf.expand_dims(tf.transpose(mel, (0, 2, 1)), -1)

    def call(self, waveform):
        return self.mel_from_magnitude(self.stft_magnitude(waveform))


@register
class PowerToDb(keras.layers.Layer):
    """Mel power (or magnitude, power=1) -> dB, floored per example at its own maximum - top_db.

    dB = (20 / power) * log10(max(x, amin)): librosa's power_to_db (power 2) or amplitude_to_db
    (power 1) with ref=1 and the floor taken over each example alone, never over the batch.
    """

    def __init__(self, top_db: float = 80.0, power: float = 2.0, amin: float = 1e-10, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.top_db, self.power, self.amin = float(top_db), float(power), float(amin)

    def call(self, x):
        db = (20.0 / self.power) * ops.log10(ops.maximum(x, self.amin))
        axes = tuple(range(1, len(x.shape)))
        return ops.maximum(db, ops.max(db, axis=axes, keepdims=True) - self.top_db)

    def get_config(self):
        return {
            **super().get_config(),
            "top_db": self.top_db,
            "power": self.power,
            "amin": self.amin,
        }


NORMALIZE_MODES = ("zscore_minmax", "zscore", "minmax", "none")


@register
class NormalizeSpectrogram(keras.layers.Layer):
    """Per-example normalisation: z-score, min-max to [0, 1], both (z-score then min-max), or none.

    Statistics are taken over each example alone; a constant example maps to 0.
    """

    def __init__(self, mode: str = "zscore_minmax", epsilon: float = 1e-6, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if mode not in NORMALIZE_MODES:
            raise ValueError(f"mode: {mode!r} is not one of {', '.join(NORMALIZE_MODES)}")
        self.mode, self.epsilon = mode, float(epsilon)

    def call(self, x):
        axes = tuple(range(1, len(x.shape)))
        if self.mode in ("zscore", "zscore_minmax"):
            x = (x - ops.mean(x, axis=axes, keepdims=True)) / (
                ops.std(x, axis=axes, keepdims=True) + self.epsilon
            )
        if self.mode in ("minmax", "zscore_minmax"):
            lo = ops.min(x, axis=axes, keepdims=True)
            x = (x - lo) / (ops.max(x, axis=axes, keepdims=True) - lo + self.epsilon)
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "epsilon": self.epsilon}


@register
class SpecAugment(keras.layers.Layer):
    """Frequency and time masks on (batch, mels, frames, ch), vectorised over the batch.

    Each of `freq_masks` (`time_masks`) masks applies with probability `freq_prob` (`time_prob`)
    and has a width drawn uniformly in [0, width]; masked cells take the value `fill`. Every
    example draws its own masks. Active only in training.
    """

    def __init__(
        self,
        freq_masks=1,
        freq_width=10,
        freq_prob=0.5,
        time_masks=2,
        time_width=25,
        time_prob=0.5,
        fill=0.0,
        seed=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.freq_masks, self.freq_width, self.freq_prob = (
            int(freq_masks),
            int(freq_width),
            float(freq_prob),
        )
        self.time_masks, self.time_width, self.time_prob = (
            int(time_masks),
            int(time_width),
            float(time_prob),
        )
        self.fill, self.seed = float(fill), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, batch, size: int, count: int, width: int, prob: float):
        """(batch, size) boolean: True where any of `count` random bands covers the index."""
        u = keras.random.uniform((3, batch, count), seed=self.seed_generator)
        widths = ops.floor(u[0] * (width + 1))
        starts = ops.floor(u[1] * (size - widths + 1))
        on = ops.cast(u[2] < prob, "float32")
        pos = ops.arange(size, dtype="float32")[None, None, :]
        inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
        return ops.any(inside & (on[..., None] > 0), axis=1)

    def call(self, x, training=None):
        if not training or (self.freq_masks == 0 and self.time_masks == 0):
            return x
        batch = ops.shape(x)[0]
        mask = ops.zeros_like(x, dtype="bool")
        if self.freq_masks:
            f = self._mask(batch, x.shape[1], self.freq_masks, self.freq_width, self.freq_prob)
            mask = mask | f[:, :, None, None]
        if self.time_masks:
            t = self._mask(batch, x.shape[2], self.time_masks, self.time_width, self.time_prob)
            mask = mask | t[:, None, :, None]
        return ops.where(mask, ops.cast(self.fill, x.dtype), x)

    def get_config(self):
        return {
            **super().get_config(),
            "freq_masks": self.freq_masks,
            "freq_width": self.freq_width,
            "freq_prob": self.freq_prob,
            "time_masks": self.time_masks,
            "time_width": self.time_width,
            "time_prob": self.time_prob,
            "fill": self.fill,
            "seed": self.seed,
        }


@register
class ToImage(keras.layers.Layer):
    """(batch, h, w, 1) in [0, 1] -> (batch, h, w, channels) in [0, scale]."""

    def __init__(self, channels: int = 3, scale: float = 255.0, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.scale = int(channels), float(scale)

    def call(self, x):
        return ops.repeat(x * self.scale, self.channels, axis=-1)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "scale": self.scale}


def frontend(
    cfg, sample_rate: int, augment=None, name: str = "frontend", seed=None
) -> keras.Sequential:
    """The front as one Sequential from a FrontendConfig (and AugmentConfig for the masks, drawn
    from `seed`): (batch, samples) waveforms -> (batch, n_mels, frames, channels)."""
    samples = int(round(cfg.clip_seconds * sample_rate))
    layers = [
        MelSpectrogram(
            samples,
            sample_rate,
            frames=cfg.frames,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            n_mels=cfg.n_mels,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
            htk=cfg.mel_scale == "htk",
            power=cfg.power,
        ),
        PowerToDb(cfg.top_db, power=cfg.power),
        NormalizeSpectrogram(cfg.normalize),
    ]
    if augment is not None:
        layers.append(
            SpecAugment(
                augment.freq_masks,
                augment.freq_mask_width,
                augment.freq_mask_prob,
                augment.time_masks,
                augment.time_mask_width,
                augment.time_mask_prob,
                seed=seed,
            )
        )
    layers.append(ToImage(cfg.channels, 255.0 if cfg.channels == 3 else 1.0, dtype="float32"))
    return keras.Sequential(layers, name=name)
