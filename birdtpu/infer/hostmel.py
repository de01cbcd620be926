"""The mel frontend of a TFLite export, computed on the host in front of the interpreter.

The STFT, most of the frontend's cost, runs on scipy's pocketfft in float32 (about 2.5 times
TensorFlow's FFT and several times TFLite's on 2 cores); the rest (|STFT|^power, mel filterbank,
dB, normalisation, image) runs through the export's own Keras layers in one traced graph, so only
the FFT's rounding differs from the Keras model (differences near 1e-6 in the probabilities).
"""

from __future__ import annotations

import keras
import numpy as np
import scipy.fft
import tensorflow as tf

from birdtpu.errors import DataError
from birdtpu.layers.frontend import MelSpectrogramTflite


class HostFrontend:
    """Waveform windows (n, samples) -> images (n, mels, frames, channels) from a serialized
    inference frontend (`birdtpu.infer.export.split_frontend`, as the export's sidecar holds it)."""

    def __init__(self, config: dict):
        layers = keras.saving.deserialize_keras_object(config).layers
        mel = layers[0]
        if not isinstance(mel, MelSpectrogramTflite):
            raise DataError(
                f"the export's frontend starts with {type(mel).__name__}, not MelSpectrogramTflite"
            )
        self.mel, self.rest = mel, layers[1:]
        n = np.arange(mel.win_length)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * n / mel.win_length)).astype(
            np.float32
        )  # periodic Hann
        shape = [None, mel.frames, mel.n_fft // 2 + 1]
        self._graph = tf.function(
            self._from_magnitude, input_signature=[tf.TensorSpec(shape, tf.float32)]
        )

    def _from_magnitude(self, mag):
        x = self.mel.mel_from_magnitude(mag)
        for layer in self.rest:
            x = layer(x, training=False)
        return x

    def magnitude(self, waves: np.ndarray, workers: int = 1) -> np.ndarray:
        """|STFT| (n, frames, freq) as `MelSpectrogramTflite.stft_magnitude` computes it."""
        m = self.mel
        pad = m.n_fft // 2
        start = (m.n_fft - m.win_length) // 2  # where the window sits in each centred frame
        x = np.pad(np.asarray(waves, np.float32), ((0, 0), (pad, pad)))[:, start:]
        frames = np.lib.stride_tricks.sliding_window_view(x, m.win_length, axis=1)[
            :, :: m.hop_length
        ][:, : m.frames]
        spec = scipy.fft.rfft(frames * self.window, n=m.n_fft, axis=-1, workers=workers)
        return np.abs(spec).astype(np.float32)

    def __call__(self, waves: np.ndarray, workers: int = 1) -> np.ndarray:
        return self._graph(self.magnitude(waves, workers)).numpy()
