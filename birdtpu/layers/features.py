"""The Freesound Audio Tagging 2019 (1st place) "global features" of a waveform, as a Keras layer.

The clip is cut into `windows` half-overlapping windows (hop = samples // (windows + 1), window =
2 x hop); each gives 12 statistics: mean, standard deviation, range (max - min) and the 0, 1, 25,
30, 50, 60, 75, 99 and 100th percentiles (linear interpolation, as `numpy.percentile`). The
(batch, windows, 12) output is a model's second input branch beside the spectrogram.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from birdtpu.saving import register

PERCENTILES = (0, 1, 25, 30, 50, 60, 75, 99, 100)
STATISTICS = ("mean", "std", "range", *(f"p{q}" for q in PERCENTILES))


@register
class GlobalFeatures(keras.layers.Layer):
    """(batch, samples) waveform -> (batch, windows, 12) window statistics (see STATISTICS)."""

    def __init__(self, windows: int = 128, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.windows = int(windows)

    def _frames(self, samples: int) -> tuple[int, int]:
        hop = samples // (self.windows + 1)
        if hop < 1:
            raise ValueError(f"{samples} samples are too few for {self.windows} windows")
        return hop, 2 * hop

    def call(self, waveform):
        samples = waveform.shape[-1]
        hop, length = self._frames(samples)
        index = np.arange(self.windows)[:, None] * hop + np.arange(length)[None, :]
        frames = ops.take(ops.cast(waveform, "float32"), index, axis=1)  # (batch, windows, length)
        ordered = ops.sort(frames, axis=-1)
        pos = np.array(PERCENTILES, np.float64) / 100.0 * (length - 1)
        lo, hi = np.floor(pos).astype(int), np.ceil(pos).astype(int)
        frac = (pos - lo).astype(np.float32)
        pct = ops.take(ordered, lo, axis=-1) * (1.0 - frac) + ops.take(ordered, hi, axis=-1) * frac
        mean = ops.mean(frames, axis=-1, keepdims=True)
        std = ops.std(frames, axis=-1, keepdims=True)
        spread = ordered[..., -1:] - ordered[..., :1]
        return ops.concatenate([mean, std, spread, pct], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.windows, len(STATISTICS))

    def get_config(self):
        return {**super().get_config(), "windows": self.windows}
