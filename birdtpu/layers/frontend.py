"""The model's front: (waveform noise and gain, training only, where they run in the model) ->
mel power -> per-example dB -> per-example normalisation -> SpecAugment masks (training only) ->
image for an ImageNet backbone.

`frontend(cfg, sample_rate, augment)` builds it as one Sequential from the config; its mel layer
is `MelSpectrogram` (birdtpu.layers.mel, both backends) or, with `impl: kapre`,
`KapreMelSpectrogram` (birdtpu.layers.kapre_mel, TensorFlow backend, the [kapre] extra).

All layers run in float32 (also under a mixed-precision policy), have static shapes and no
Python control flow on tensor values, so they compile with XLA as on a TPU. Nothing depends on
the other clips of a batch: every max, mean and floor is taken per example.
"""

from __future__ import annotations

import importlib

import keras
from keras import ops

from birdtpu.errors import ConfigError
from birdtpu.layers.augment import WaveAugment
from birdtpu.layers.mel import MelSpectrogram, MelSpectrogramTflite
from birdtpu.saving import register

__all__ = [
    "MelSpectrogram",
    "MelSpectrogramTflite",
    "NormalizeSpectrogram",
    "PowerToDb",
    "SpecAugment",
    "ToImage",
    "frontend",
    "mel_layer_class",
]


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


def mel_layer_class(impl: str) -> type:
    """The mel layer of `frontend.impl`: "keras" (any backend) or "kapre" (TensorFlow backend,
    kapre installed); anything else is a ConfigError."""
    if impl == "keras":
        return MelSpectrogram
    if impl != "kapre":
        raise ConfigError(f"frontend.impl: {impl!r} is not one of keras, kapre")
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ConfigError(
            f"frontend.impl: kapre runs on the tensorflow backend only, not {backend}"
        )
    try:
        return importlib.import_module("birdtpu.layers.kapre_mel").KapreMelSpectrogram
    except ModuleNotFoundError as e:
        if e.name != "kapre":
            raise
        raise ConfigError("frontend.impl: kapre is not installed (pip install kapre)") from None


def frontend(
    cfg, sample_rate: int, augment=None, name: str = "frontend", seed=None, wave_augment=None
) -> keras.Sequential:
    """The front as one Sequential from a FrontendConfig (and AugmentConfig for the masks, drawn
    from `seed`): (batch, samples) waveforms -> (batch, n_mels, frames, channels).
    `wave_augment`: an AugmentConfig whose waveform augmentations run first, in the model."""
    samples = int(round(cfg.clip_seconds * sample_rate))
    waves = [] if wave_augment is None else [WaveAugment.from_augment_config(wave_augment, seed)]
    layers = [
        *waves,
        mel_layer_class(cfg.impl)(
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
