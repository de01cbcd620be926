"""The mel spectrogram of the model's front: librosa's mel filterbank in NumPy, `MelSpectrogram`
in `keras.ops` (TensorFlow and JAX backends, XLA) and `MelSpectrogramTflite`, its TFLite form.

Both layers compute `librosa.feature.melspectrogram(center=True, pad_mode="constant")`: the
waveform gets n_fft // 2 zeros each side, frame t starts at t * hop and spans n_fft samples, a
periodic Hann window of win_length sits centred in it, and the mel filterbank (Slaney-normalised,
Slaney or HTK mel scale) is applied to |rfft|^power. The first `frames` frames are kept.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from birdtpu.saving import register


def hz_to_mel(hz, htk: bool = False) -> np.ndarray:
    """Hz -> mel: HTK's 2595 log10(1 + f / 700), or Slaney's (linear below 1 kHz, log above)."""
    hz = np.asarray(hz, np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, hz * 3.0 / 200.0)


def mel_to_hz(mel, htk: bool = False) -> np.ndarray:
    """The inverse of `hz_to_mel`."""
    mel = np.asarray(mel, np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return np.where(
        mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * 200.0 / 3.0
    )


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool = False
) -> np.ndarray:
    """(n_fft // 2 + 1, n_mels) float32 triangular filters, Slaney-normalised (constant energy
    per band): `librosa.filters.mel(htk=htk, norm="slaney").T`."""
    fft_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    ramps = edges[:, None] - fft_hz[None, :]
    widths = np.diff(edges)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T.astype(np.float32)


def hann_window(win_length: int, n_fft: int) -> np.ndarray:
    """(n_fft,) float32: a periodic Hann window of win_length centred in n_fft zeros (librosa's)."""
    window = np.zeros(n_fft)
    start = (n_fft - win_length) // 2
    window[start : start + win_length] = 0.5 - 0.5 * np.cos(
        2.0 * np.pi * np.arange(win_length) / win_length
    )
    return window.astype(np.float32)


@register
class MelSpectrogram(keras.layers.Layer):
    """(batch, samples) waveform -> (batch, n_mels, frames, 1) mel spectrogram of |STFT|^power.

    As `librosa.feature.melspectrogram(center=True, pad_mode="constant")` (see the module doc),
    in `keras.ops` only: frames are cut by reshaping the padded waveform into hop-long blocks and
    concatenating neighbouring blocks (no gather), then windowed and transformed by `ops.rfft`
    (exact in float32 on every device, unlike a DFT matmul under TF32 or bfloat16 passes).
    hop = samples // (frames - 1) when hop_length is 0. power 2: power, 1: magnitude.
    Runs in float32 under any dtype policy; static shapes; each clip is computed alone.
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
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} is longer than n_fft {self.n_fft}")
        if 1 + self.samples // self.hop_length < self.frames:
            raise ValueError(
                f"{self.frames} frames do not fit {self.samples} samples at hop {self.hop_length}"
            )
        self.window = hann_window(self.win_length, self.n_fft)
        self.filterbank = mel_filterbank(
            self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax, self.htk
        )

    def frame(self, waveform):
        """(batch, samples) -> (batch, frames, n_fft): the centred, zero-padded frames."""
        hop, blocks = self.hop_length, -(-self.n_fft // self.hop_length)
        length = (self.frames + blocks - 1) * hop  # every sample the frames read, in whole blocks
        pad = self.n_fft // 2
        samples = waveform.shape[1] or self.samples
        x = ops.pad(waveform, [[0, 0], [pad, max(0, length - pad - samples)]])[:, :length]
        x = ops.reshape(x, (-1, self.frames + blocks - 1, hop))
        x = ops.concatenate([x[:, j : j + self.frames] for j in range(blocks)], axis=-1)
        return x[:, :, : self.n_fft]

    def spectrum(self, frames):
        """(batch, frames, n_fft) -> |rfft(frames * window)|^power (batch, frames, n_fft//2+1)."""
        real, imag = ops.rfft(frames * self.window)
        power = real * real + imag * imag
        if self.power == 2.0:
            return power
        return ops.sqrt(power) if self.power == 1.0 else ops.power(power, self.power / 2.0)

    def call(self, waveform):
        spec = self.spectrum(self.frame(ops.cast(waveform, "float32")))
        mel = ops.matmul(spec, self.filterbank)  # (batch, frames, mels)
        return ops.expand_dims(ops.transpose(mel, (0, 2, 1)), -1)

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
    """`MelSpectrogram` in TensorFlow ops that TFLite converts (TensorFlow backend, for exports).

    Same configuration, same numbers: tf.signal.stft of win_length-long frames (periodic Hann)
    starting (n_fft - win_length) // 2 into each centred frame, which leaves |X| unchanged, then
    |X|^power and the same mel filterbank, (batch, n_mels, frames, 1).
    """

    def stft_magnitude(self, waveform):
        """(batch, samples) -> |STFT| (batch, frames, n_fft // 2 + 1)."""
        pad = self.n_fft // 2
        start = (self.n_fft - self.win_length) // 2
        x = tf.pad(tf.cast(waveform, tf.float32), [[0, 0], [pad, pad]])
        x = x[:, start : start + (self.frames - 1) * self.hop_length + self.win_length]
        return tf.abs(
            tf.signal.stft(
                x, self.win_length, self.hop_length, self.n_fft, window_fn=tf.signal.hann_window
            )
        )

    def mel_from_magnitude(self, mag):
        """|STFT| (batch, frames, freq) -> mel (batch, n_mels, frames, 1)."""
        spec = tf.square(mag) if self.power == 2.0 else tf.pow(mag, self.power)
        mel = tf.matmul(spec, tf.constant(self.filterbank))  # (batch, frames, mels)
        return tf.expand_dims(tf.transpose(mel, (0, 2, 1)), -1)

    def call(self, waveform):
        return self.mel_from_magnitude(self.stft_magnitude(waveform))
