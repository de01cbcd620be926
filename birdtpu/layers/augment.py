"""Augmentations as batched in-graph ops: waveform transforms, background mixing, MixUp and CutMix.

Every function takes a batch, a stateless seed (int32 [2]) and a probability, and draws its random
values per example: each clip is transformed or not, with its own strength, independently of the
others. The ops are core TensorFlow on static shapes, so they run in a `tf.data` map (the
pipeline passes a seed per batch: a seeded pipeline repeats exactly) and inside a model under
XLA (`jit_compile=True`; Beta draws use an XLA-friendly gamma sampler, as XLA has no gamma op).

The layers (WaveAugment, BackgroundMix, MixUp, CutMix) wrap them: they act only with
`training=True` and then draw their seeds from a Keras SeedGenerator. `layer.augment(x, seed)` is
the same transform with an explicit seed.

Time stretch and pitch shift run in graph through a phase vocoder on a 512-point STFT and keep the
clip length: a faster clip ends in zeros, a slower one loses its end; pitch shift resamples the
stretched audio by linear interpolation (slight aliasing above sr/2 / factor when shifting up).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from birdtpu.saving import register

LABEL_MODES = ("weight", "max")


# ------------------------------------------------------------------ random draws


def split_seed(seed, n: int):
    """`n` independent stateless seeds ([n, 2] int32) from one."""
    return tf.random.experimental.stateless_split(tf.cast(seed, tf.int32), n)


def _uniform(seed, batch, lo: float = 0.0, hi: float = 1.0):
    return tf.random.stateless_uniform([batch], seed, minval=lo, maxval=hi)


def _coin(seed, batch, prob: float):
    """(batch,) bool: True with probability `prob`, per example."""
    return _uniform(seed, batch) < prob


def _gamma(seed, shape, alpha: float, proposals: int = 16):
    """Gamma(alpha, 1) samples by Marsaglia-Tsang, vectorised over `proposals` tries (XLA-friendly).

    Shapes below 1 are boosted (Gamma(a) = Gamma(a + 1) * U^(1/a)). Each try is accepted with
    probability > 0.95, so all 16 fail with probability < 1e-20 (the sample is then d, near the mode).
    """
    a = alpha + 1.0 if alpha < 1.0 else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    s = split_seed(seed, 3)
    x = tf.random.stateless_normal([*shape, proposals], s[0])
    u = tf.random.stateless_uniform([*shape, proposals], s[1], minval=1e-12, maxval=1.0)
    v = tf.pow(1.0 + c * x, 3.0)
    safe_v = tf.maximum(v, 1e-12)
    accept = (v > 0) & (tf.math.log(u) < 0.5 * x * x + d - d * safe_v + d * tf.math.log(safe_v))
    first = tf.argmax(tf.cast(accept, tf.int32), axis=-1, output_type=tf.int32)
    chosen = tf.gather(safe_v, first, batch_dims=len(shape))
    g = d * tf.where(tf.reduce_any(accept, axis=-1), chosen, 1.0)
    if alpha < 1.0:
        g *= tf.pow(tf.random.stateless_uniform(shape, s[2], minval=1e-12, maxval=1.0), 1.0 / alpha)
    return g


def beta(seed, shape, alpha: float):
    """Beta(alpha, alpha) samples of `shape`, XLA-compilable."""
    s = split_seed(seed, 2)
    a, b = _gamma(s[0], shape, alpha), _gamma(s[1], shape, alpha)
    return a / tf.maximum(a + b, 1e-30)


def partners(seed, batch):
    """(batch,) a random partner for each example, never itself when batch > 1 (one random cycle)."""
    perm = tf.argsort(_uniform(seed, batch))
    return tf.gather(tf.roll(perm, -1, axis=0), tf.argsort(perm))


def _col(v, x):
    """(batch,) values shaped to broadcast over `x` and cast to its dtype."""
    return tf.reshape(tf.cast(v, x.dtype), [-1] + [1] * (len(x.shape) - 1))


# ------------------------------------------------------------------ waveform transforms


def _power(wave):
    return tf.reduce_mean(tf.square(wave), axis=-1, keepdims=True)


def at_snr(wave, noise, snr_db):
    """`noise` scaled per example so that power(wave) / power(noise) is `snr_db` ((batch,) dB)."""
    target = _power(wave) / tf.pow(10.0, snr_db[:, None] / 10.0)
    return noise * tf.sqrt(target / (_power(noise) + 1e-12))


def noise(seed, batch, samples: int, color: str = "white", blocks: int = 256, offsets: int = 1024):
    """(batch, samples) unit-RMS white or pink noise, a different stretch for each example.

    Each example gets a window of one shared random sequence, starting at its own offset (offsets
    are distinct, in steps of samples // `blocks`): per example white Gaussian (or pink) scaled to
    unit RMS, and about 10x cheaper than batch x samples independent draws (which dominate a CPU
    pipeline).
    """
    s = split_seed(seed, 2)
    hop = max(1, samples // blocks)
    width = -(-samples // hop)  # blocks per window
    total = (width + offsets) * hop
    base = tf.random.stateless_normal([total], s[0]) if color == "white" else pink(s[0], total)
    order = tf.argsort(tf.random.stateless_uniform([offsets + 1], s[1]))
    start = tf.tile(order, [batch // (offsets + 1) + 1])[:batch]
    windows = tf.gather(tf.reshape(base, [-1, hop]), start[:, None] + tf.range(width)[None, :])
    windows = tf.reshape(windows, [batch, width * hop])[:, :samples]
    return windows * tf.math.rsqrt(_power(windows) + 1e-12)


def pink(seed, samples: int):
    """(samples,) pink noise (power ~ 1/f, no DC): white noise shaped by an FFT."""
    white = tf.random.stateless_normal([samples], seed)
    scale = tf.math.rsqrt(tf.maximum(tf.range(samples // 2 + 1, dtype=tf.float32), 1.0))
    scale = tf.tensor_scatter_nd_update(scale, [[0]], [0.0])
    return tf.signal.irfft(tf.signal.rfft(white) * tf.complex(scale, 0.0), fft_length=[samples])


def gaussian_noise(wave, seed, prob: float, std=(0.001, 0.015)):
    """Gaussian noise at a fixed level: its standard deviation is drawn in `std` (full scale 1)."""
    s, b = split_seed(seed, 3), tf.shape(wave)[0]
    added = noise(s[0], b, wave.shape[-1]) * _uniform(s[1], b, *std)[:, None]
    return tf.where(_coin(s[2], b, prob)[:, None], wave + added, wave)


def gaussian_noise_snr(wave, seed, prob: float, snr_db=(10.0, 40.0)):
    """Gaussian noise at a signal-to-noise ratio drawn uniformly in `snr_db`."""
    s, b = split_seed(seed, 3), tf.shape(wave)[0]
    added = at_snr(wave, noise(s[0], b, wave.shape[-1]), _uniform(s[1], b, *snr_db))
    return tf.where(_coin(s[2], b, prob)[:, None], wave + added, wave)


def pink_noise_snr(wave, seed, prob: float, snr_db=(10.0, 40.0)):
    """Pink noise at a signal-to-noise ratio drawn uniformly in `snr_db`."""
    s, b = split_seed(seed, 3), tf.shape(wave)[0]
    added = at_snr(wave, noise(s[0], b, wave.shape[-1], "pink"), _uniform(s[1], b, *snr_db))
    return tf.where(_coin(s[2], b, prob)[:, None], wave + added, wave)


def time_shift(wave, seed, prob: float, max_fraction: float = 0.5, mode: str = "roll"):
    """Shift by up to `max_fraction` of the clip either way; `roll` wraps around, `pad` fills zeros."""
    s, b, n = split_seed(seed, 2), tf.shape(wave)[0], wave.shape[-1]
    limit = int(max_fraction * n)
    shift = tf.cast(tf.floor(_uniform(s[0], b, -limit, limit + 1)), tf.int32)
    shift = tf.where(_coin(s[1], b, prob), shift, 0)
    src = tf.range(n)[None, :] - shift[:, None]
    out = tf.gather(wave, tf.math.floormod(src, n), batch_dims=1)
    if mode == "pad":
        out = tf.where((src >= 0) & (src < n), out, tf.zeros_like(out))
    return out


def gain(wave, seed, prob: float, db=(-6.0, 6.0)):
    """Volume change by a gain drawn uniformly in `db`."""
    s, b = split_seed(seed, 2), tf.shape(wave)[0]
    factor = tf.pow(10.0, _uniform(s[0], b, *db) / 20.0)
    return wave * tf.where(_coin(s[1], b, prob), factor, 1.0)[:, None]


def mix_background(wave, background, seed, prob: float, snr_db=(3.0, 30.0)):
    """Add a background clip (same shape: one no-call clip per example) at an SNR drawn in `snr_db`."""
    s, b = split_seed(seed, 2), tf.shape(wave)[0]
    noise = at_snr(wave, tf.cast(background, wave.dtype), _uniform(s[0], b, *snr_db))
    return tf.where(_coin(s[1], b, prob)[:, None], wave + noise, wave)


def _stft(wave, n_fft: int, hop: int):
    """STFT of `wave` padded with n_fft zeros each side, so every kept sample is fully overlapped."""
    x = tf.pad(wave, [[0, 0], [n_fft, n_fft]])
    return tf.signal.stft(x, n_fft, hop, n_fft, window_fn=tf.signal.hann_window, pad_end=True)


def _istft(spec, n_fft: int, hop: int):
    return tf.signal.inverse_stft(
        spec,
        n_fft,
        hop,
        n_fft,
        window_fn=tf.signal.inverse_stft_window_fn(hop, tf.signal.hann_window),
    )


def phase_vocoder(spec, positions):
    """(batch, out_frames, bins) STFT read at fractional input frames `positions` (batch, out_frames).

    As librosa's phase vocoder: magnitudes interpolate between neighbouring frames and each bin's
    phase advances by its measured advance between them (taken in [-pi, pi): the same angle
    modulo 2 pi, and a cumulative sum that stays small in float32). Positions past the last frame
    give silence.
    """
    last = spec.shape[1] - 1
    i0 = tf.clip_by_value(tf.floor(positions), 0.0, float(last))
    frac = tf.clip_by_value(positions - i0, 0.0, 1.0)[..., None]
    i0 = tf.cast(i0, tf.int32)
    c0 = tf.gather(spec, i0, batch_dims=1)
    c1 = tf.gather(spec, tf.minimum(i0 + 1, last), batch_dims=1)
    mag = (1.0 - frac) * tf.abs(c0) + frac * tf.abs(c1)
    mag *= tf.cast(positions <= float(last), mag.dtype)[..., None]
    step = tf.math.angle(c1) - tf.math.angle(c0)
    step -= 2.0 * math.pi * tf.round(step / (2.0 * math.pi))
    phase = tf.math.angle(spec[:, :1]) + tf.cumsum(step, axis=1, exclusive=True)
    return tf.complex(mag * tf.cos(phase), mag * tf.sin(phase))


def time_stretch(wave, seed, prob: float, rate=(0.8, 1.25), n_fft: int = 512, hop: int = 128):
    """Speed change by a factor drawn in `rate` (> 1 faster) with the pitch kept (phase vocoder).

    The clip keeps its length: a faster clip ends in silence, a slower one loses its end.
    """
    s, b, n = split_seed(seed, 2), tf.shape(wave)[0], wave.shape[-1]
    on = _coin(s[1], b, prob)
    r = tf.where(on, _uniform(s[0], b, *rate), 1.0)
    spec = _stft(wave, n_fft, hop)
    positions = tf.range(spec.shape[1], dtype=tf.float32)[None, :] * r[:, None]
    out = _istft(phase_vocoder(spec, positions), n_fft, hop)[:, n_fft : n_fft + n]
    return tf.where(on[:, None], out, wave)


def pitch_shift(wave, seed, prob: float, semitones=(-2.0, 2.0), n_fft: int = 512, hop: int = 128):
    """Pitch shift by a number of semitones drawn in `semitones`, duration kept (as librosa's:
    stretch by the pitch factor, then resample back; here by linear interpolation)."""
    s, b, n = split_seed(seed, 2), tf.shape(wave)[0], wave.shape[-1]
    on = _coin(s[1], b, prob)
    factor = tf.where(on, tf.pow(2.0, _uniform(s[0], b, *semitones) / 12.0), 1.0)
    spec = _stft(wave, n_fft, hop)
    out_frames = math.ceil(spec.shape[1] * max(1.0, 2.0 ** (semitones[1] / 12.0))) + 1
    positions = tf.range(out_frames, dtype=tf.float32)[None, :] / factor[:, None]
    slow = _istft(phase_vocoder(spec, positions), n_fft, hop)  # factor x longer, same pitch
    # sample m of the shifted clip is at factor * (m + n_fft) of the slowed, padded one
    at = factor[:, None] * (tf.range(n, dtype=tf.float32)[None, :] + n_fft)
    at = tf.clip_by_value(at, 0.0, float(slow.shape[-1] - 2))
    i0 = tf.cast(tf.floor(at), tf.int32)
    frac = at - tf.floor(at)
    out = (1.0 - frac) * tf.gather(slow, i0, batch_dims=1) + frac * tf.gather(
        slow, i0 + 1, batch_dims=1
    )
    return tf.where(on[:, None], out, wave)


# ------------------------------------------------------------------ batch mixing


def time_axis(x) -> int:
    """The time axis of a batch: 1 for waveforms (batch, samples), 2 for (batch, mels, frames, ch)."""
    return 1 if len(x.shape) == 2 else 2


def mix_targets(y, y_other, lam, on, labels: str = "weight"):
    """Targets of mixed examples: `weight` lam * y + (1 - lam) * y_other, `max` their maximum."""
    if labels == "max":
        return tf.where(on[:, None], tf.maximum(y, y_other), y)
    lam = _col(lam, y)
    return lam * y + (1.0 - lam) * y_other


def mixup(x, y, seed, prob: float, alpha: float, labels: str = "weight"):
    """MixUp with one lambda per example: with probability `prob`, an example becomes
    lam * itself + (1 - lam) * a random partner, lam ~ Beta(alpha, alpha) folded to >= 0.5."""
    s, b = split_seed(seed, 3), tf.shape(x)[0]
    lam = beta(s[0], [b], alpha)
    on = _coin(s[1], b, prob)
    lam = tf.where(on, tf.maximum(lam, 1.0 - lam), 1.0)
    other = partners(s[2], b)
    w = _col(lam, x)
    x = w * x + (1.0 - w) * tf.gather(x, other)
    return x, mix_targets(y, tf.gather(y, other), lam, on, labels)


def cutmix(x, y, seed, prob: float, alpha: float, labels: str = "weight", axis: int | None = None):
    """CutMix along time, one lambda per example: with probability `prob`, a segment of
    (1 - lam) of the clip, lam ~ Beta(alpha, alpha), comes from a random partner (same span).

    `axis` defaults to the time axis (`time_axis`); targets mix by the share actually pasted.
    """
    axis = time_axis(x) if axis is None else axis
    n = x.shape[axis]
    s, b = split_seed(seed, 4), tf.shape(x)[0]
    width = tf.round((1.0 - beta(s[0], [b], alpha)) * n)
    start = tf.floor(_uniform(s[1], b) * (n - width + 1.0))
    on = _coin(s[2], b, prob) & (width > 0)
    pos = tf.range(n, dtype=tf.float32)[None, :]
    inside = (pos >= start[:, None]) & (pos < (start + width)[:, None]) & on[:, None]
    kept = 1.0 - tf.reduce_mean(tf.cast(inside, tf.float32), axis=1)
    shape = [-1] + [1] * (len(x.shape) - 1)
    shape[axis] = n
    other = partners(s[3], b)
    x = tf.where(tf.reshape(inside, shape), tf.gather(x, other), x)
    return x, mix_targets(y, tf.gather(y, other), kept, on, labels)


# ------------------------------------------------------------------ layers


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
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), 2**31 - 1), tf.int32)
        return self.augment(inputs, seed)

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
        """MixUp with an explicit seed."""
        x, y = inputs
        return mixup(x, y, seed, self.prob, self.alpha, self.labels)


@register
class CutMix(_Mix):
    """(x, targets) -> (x, targets), a time segment pasted per example (see `cutmix`)."""

    def __init__(self, prob=0.5, alpha=2.5, labels="weight", axis=None, seed=None, **kwargs):
        super().__init__(prob, alpha, labels, seed, **kwargs)
        self.axis = axis

    def augment(self, inputs, seed):
        """CutMix with an explicit seed."""
        x, y = inputs
        return cutmix(x, y, seed, self.prob, self.alpha, self.labels, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
