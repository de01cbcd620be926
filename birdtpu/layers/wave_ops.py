"""Waveform augmentations as batched ops: gain, time shift, noise, background, time stretch, pitch.

Every function takes a (batch, samples) batch, a stateless seed (int32 [2]) and a probability, and
draws its random values per example: each clip is transformed or not, with its own strength,
independently of the others. They are written once against `birdtpu.layers.xp` on static clip
lengths, so they run in a `tf.data` map under any Keras backend (the pipeline passes a seed per
batch: a seeded pipeline repeats exactly) and inside a model under XLA (JAX or TensorFlow).

Time stretch and pitch shift run through a phase vocoder on a 512-point STFT (`keras.ops.stft`)
and keep the clip length: a faster clip ends in zeros, a slower one loses its end; pitch shift
resamples the stretched audio by linear interpolation (slight aliasing above sr/2 / factor when
shifting up).
"""

from __future__ import annotations

import math

from birdtpu.layers.xp import Ops, batch_size, coin, namespace


def _power(xp: Ops, wave):
    return xp.mean(xp.square(wave), axis=-1, keepdims=True)


def _where_on(xp: Ops, on, changed, wave):
    """`changed` for the examples where `on` ((batch,) bool), `wave` for the others."""
    return xp.where(xp.expand_dims(on, -1), changed, wave)


def at_snr(wave, noise, snr_db):
    """`noise` scaled per example so that power(wave) / power(noise) is `snr_db` ((batch,) dB)."""
    xp = namespace(wave)
    target = _power(xp, wave) / xp.power(10.0, xp.expand_dims(snr_db, -1) / 10.0)
    return noise * xp.sqrt(target / (_power(xp, noise) + 1e-12))


def pink(seed, samples: int, xp: Ops | None = None):
    """(samples,) pink noise (power ~ 1/f, no DC): white noise shaped by an FFT."""
    xp = xp or namespace(seed)
    real, imag = xp.rfft(xp.normal(seed, [samples]))
    scale = xp.rsqrt(xp.maximum(xp.arange(samples // 2 + 1, dtype="float32"), 1.0))
    scale = xp.where(xp.arange(samples // 2 + 1) == 0, 0.0, scale)
    return xp.irfft((real * scale, imag * scale), fft_length=samples)


def noise(
    seed,
    batch,
    samples: int,
    color: str = "white",
    blocks: int = 256,
    offsets: int = 1024,
    xp: Ops | None = None,
):
    """(batch, samples) unit-RMS white or pink noise, a different stretch for each example.

    Each example gets a window of one shared random sequence, starting at its own offset (offsets
    are distinct, in steps of samples // `blocks`): per example white Gaussian (or pink) scaled to
    unit RMS, and about 10x cheaper than batch x samples independent draws (which dominate a CPU
    pipeline). White windows are uncorrelated; pink ones, as shifts of one 1/f sequence, keep some
    correlation (|r| mostly below 0.4), as their low frequencies are long.
    """
    xp = xp or namespace(seed)
    s = xp.split(seed, 2)
    hop = max(1, samples // blocks)
    width = -(-samples // hop)  # blocks per window
    total = (width + offsets) * hop
    base = xp.normal(s[0], [total]) if color == "white" else pink(s[0], total, xp)
    order = xp.argsort(xp.uniform(s[1], [offsets + 1]))
    start = xp.take(order, xp.mod(xp.arange(batch), offsets + 1), axis=0)
    index = xp.expand_dims(start, -1) + xp.expand_dims(xp.arange(width), 0)
    windows = xp.take(xp.reshape(base, [-1, hop]), index, axis=0)
    windows = xp.reshape(windows, [-1, width * hop])[:, :samples]
    return windows * xp.rsqrt(_power(xp, windows) + 1e-12)


def _added_noise(wave, seed, prob: float, level, color: str, snr: bool):
    xp = namespace(wave)
    s, b = xp.split(seed, 3), batch_size(xp, wave)
    unit = noise(s[0], b, wave.shape[-1], color, xp=xp)
    value = xp.uniform(s[1], [b], *level)
    added = at_snr(wave, unit, value) if snr else unit * xp.expand_dims(value, -1)
    return _where_on(xp, coin(xp, s[2], b, prob), wave + added, wave)


def gaussian_noise(wave, seed, prob: float, std=(0.001, 0.015)):
    """Gaussian noise at a fixed level: its standard deviation is drawn in `std` (full scale 1)."""
    return _added_noise(wave, seed, prob, std, "white", snr=False)


def gaussian_noise_snr(wave, seed, prob: float, snr_db=(10.0, 40.0)):
    """Gaussian noise at a signal-to-noise ratio drawn uniformly in `snr_db`."""
    return _added_noise(wave, seed, prob, snr_db, "white", snr=True)


def pink_noise_snr(wave, seed, prob: float, snr_db=(10.0, 40.0)):
    """Pink noise at a signal-to-noise ratio drawn uniformly in `snr_db`."""
    return _added_noise(wave, seed, prob, snr_db, "pink", snr=True)


def time_shift(wave, seed, prob: float, max_fraction: float = 0.5, mode: str = "roll"):
    """Shift by up to `max_fraction` of the clip either way; `roll` wraps around, `pad` fills zeros."""
    xp = namespace(wave)
    s, b, n = xp.split(seed, 2), batch_size(xp, wave), wave.shape[-1]
    limit = int(max_fraction * n)
    shift = xp.cast(xp.floor(xp.uniform(s[0], [b], -limit, limit + 1)), "int32")
    shift = xp.where(coin(xp, s[1], b, prob), shift, 0)
    src = xp.expand_dims(xp.arange(n, dtype="int32"), 0) - xp.expand_dims(shift, -1)
    out = xp.take_along_axis(wave, xp.mod(src, n), axis=1)
    if mode == "pad":
        out = xp.where((src >= 0) & (src < n), out, xp.zeros_like(out))
    return out


def gain(wave, seed, prob: float, db=(-6.0, 6.0)):
    """Volume change by a gain drawn uniformly in `db`."""
    xp = namespace(wave)
    s, b = xp.split(seed, 2), batch_size(xp, wave)
    factor = xp.power(10.0, xp.uniform(s[0], [b], *db) / 20.0)
    return wave * xp.expand_dims(xp.where(coin(xp, s[1], b, prob), factor, 1.0), -1)


def mix_background(wave, background, seed, prob: float, snr_db=(3.0, 30.0)):
    """Add a background clip (same shape: one no-call clip per example) at an SNR drawn in `snr_db`."""
    xp = namespace(wave)
    s, b = xp.split(seed, 2), batch_size(xp, wave)
    added = at_snr(wave, xp.cast(background, wave.dtype), xp.uniform(s[0], [b], *snr_db))
    return _where_on(xp, coin(xp, s[1], b, prob), wave + added, wave)


def _stft(xp: Ops, wave, n_fft: int, hop: int):
    """(real, imag) STFT of `wave` padded with n_fft zeros each side, so that every kept sample is
    fully overlapped."""
    x = xp.pad(wave, [[0, 0], [n_fft, n_fft]])
    return xp.stft(x, n_fft, hop, n_fft, window="hann", center=False)


def _istft(xp: Ops, spec, n_fft: int, hop: int):
    return xp.istft(spec, n_fft, hop, n_fft, window="hann", center=False)


def _frames(xp: Ops, values, index):
    """values (batch, frames, bins) read at integer frames `index` (batch, out_frames)."""
    return xp.take_along_axis(values, xp.expand_dims(index, -1), axis=1)


def phase_vocoder(spec, positions):
    """(real, imag) (batch, out_frames, bins) of the STFT `spec` ((real, imag) (batch, frames,
    bins)) read at fractional input frames `positions` (batch, out_frames).

    As librosa's phase vocoder: magnitudes interpolate between neighbouring frames and each bin's
    phase advances by its measured advance between them (taken in [-pi, pi): the same angle
    modulo 2 pi, and a cumulative sum that stays small in float32). Positions past the last frame
    give silence.
    """
    real, imag = spec
    xp = namespace(real)
    last = real.shape[1] - 1
    i0 = xp.clip(xp.floor(positions), 0.0, float(last))
    frac = xp.expand_dims(xp.clip(positions - i0, 0.0, 1.0), -1)
    i0 = xp.cast(i0, "int32")
    i1 = xp.minimum(i0 + 1, last)
    r0, m0 = _frames(xp, real, i0), _frames(xp, imag, i0)
    r1, m1 = _frames(xp, real, i1), _frames(xp, imag, i1)
    mag = (1.0 - frac) * xp.sqrt(r0 * r0 + m0 * m0) + frac * xp.sqrt(r1 * r1 + m1 * m1)
    mag = mag * xp.expand_dims(xp.cast(positions <= float(last), mag.dtype), -1)
    step = xp.arctan2(m1, r1) - xp.arctan2(m0, r0)
    step = step - 2.0 * math.pi * xp.round(step / (2.0 * math.pi))
    phase = xp.arctan2(imag[:, :1], real[:, :1]) + xp.cumsum(step, axis=1) - step
    return mag * xp.cos(phase), mag * xp.sin(phase)


def time_stretch(wave, seed, prob: float, rate=(0.8, 1.25), n_fft: int = 512, hop: int = 128):
    """Speed change by a factor drawn in `rate` (> 1 faster) with the pitch kept (phase vocoder).

    The clip keeps its length: a faster clip ends in silence, a slower one loses its end.
    """
    xp = namespace(wave)
    s, b, n = xp.split(seed, 2), batch_size(xp, wave), wave.shape[-1]
    on = coin(xp, s[1], b, prob)
    r = xp.where(on, xp.uniform(s[0], [b], *rate), 1.0)
    spec = _stft(xp, wave, n_fft, hop)
    frames = xp.arange(spec[0].shape[1], dtype="float32")
    positions = xp.expand_dims(frames, 0) * xp.expand_dims(r, -1)
    out = _istft(xp, phase_vocoder(spec, positions), n_fft, hop)[:, n_fft : n_fft + n]
    return _where_on(xp, on, out, wave)


def pitch_shift(wave, seed, prob: float, semitones=(-2.0, 2.0), n_fft: int = 512, hop: int = 128):
    """Pitch shift by a number of semitones drawn in `semitones`, duration kept (as librosa's:
    stretch by the pitch factor, then resample back; here by linear interpolation)."""
    xp = namespace(wave)
    s, b, n = xp.split(seed, 2), batch_size(xp, wave), wave.shape[-1]
    on = coin(xp, s[1], b, prob)
    factor = xp.where(on, xp.power(2.0, xp.uniform(s[0], [b], *semitones) / 12.0), 1.0)
    factor = xp.expand_dims(factor, -1)
    spec = _stft(xp, wave, n_fft, hop)
    out_frames = math.ceil(spec[0].shape[1] * max(1.0, 2.0 ** (semitones[1] / 12.0))) + 1
    positions = xp.expand_dims(xp.arange(out_frames, dtype="float32"), 0) / factor
    slow = _istft(xp, phase_vocoder(spec, positions), n_fft, hop)  # factor x longer, same pitch
    # sample m of the shifted clip is at factor * (m + n_fft) of the slowed, padded one
    at = factor * xp.expand_dims(xp.arange(n, dtype="float32") + n_fft, 0)
    at = xp.clip(at, 0.0, float(slow.shape[-1] - 2))
    i0 = xp.cast(xp.floor(at), "int32")
    frac = at - xp.floor(at)
    out = (1.0 - frac) * xp.take_along_axis(slow, i0, axis=1) + frac * xp.take_along_axis(
        slow, i0 + 1, axis=1
    )
    return _where_on(xp, on, out, wave)
