"""The Freesound Audio Tagging 2019 winners' "global features", over the whole clip, in tf.data.

A clip of n samples is cut into `windows` (128) steps of stride n / windows; step s covers
[max(0, int((s - 1/2) stride)), int((s + 3/2) stride)) (cut at the clip's end), so windows overlap
by half, the first is 1.5 strides long and the last runs to the end. Each window gives 12
statistics: mean, standard deviation (population), range (max - min) and the 0, 1, 25, 30, 50, 60,
75, 99 and 100th percentiles (linear interpolation, as `numpy.percentile`): the winners'
`get_global_feat`, sample for sample. With the clip length in seconds they are the model's second
and third inputs (`clip_features` (windows, 12), `clip_seconds` (1,)), computed once per record
from the whole (silence-trimmed) recording, not from the training crop.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

WINDOWS = 128
PERCENTILES = (0, 1, 25, 30, 50, 60, 75, 99, 100)
STATISTICS = ("mean", "std", "range", *(f"p{q}" for q in PERCENTILES))
INPUTS = ("clip_features", "clip_seconds")  # the model inputs beside "waveform"


def _bounds(n, windows: int):
    """(start, length) of each window of an n-sample clip, as int32 (windows,) tensors."""
    stride = tf.cast(n, tf.float64) / windows
    centre = tf.range(windows, dtype=tf.float64) * stride
    start = tf.maximum(tf.cast(centre - stride / 2, tf.int32), 0)  # int() truncates to zero
    end = tf.minimum(tf.cast(centre + 1.5 * stride, tf.int32), n)
    return start, tf.maximum(end - start, 1)


def clip_features(wave, windows: int = WINDOWS):
    """(windows, 12) float32 statistics (STATISTICS) of a whole clip `wave` (samples,), float.

    A clip shorter than `windows` samples is zero-padded to that length first (the winners'
    code fails on one: its empty windows have no percentiles)."""
    wave = tf.cast(wave, tf.float32)
    wave = tf.pad(wave, [[0, tf.maximum(windows - tf.shape(wave)[0], 0)]])
    n = tf.shape(wave)[0]
    start, length = _bounds(n, windows)
    width = tf.reduce_max(length)
    offset = tf.range(width)[None, :]
    valid = offset < length[:, None]
    frames = tf.gather(wave, tf.minimum(start[:, None] + offset, n - 1))  # (windows, width)
    zeros = tf.zeros_like(frames)
    count = tf.cast(length, tf.float32)[:, None]
    mean = tf.reduce_sum(tf.where(valid, frames, zeros), -1, keepdims=True) / count
    deviation = tf.where(valid, frames - mean, zeros)
    std = tf.sqrt(tf.reduce_sum(tf.square(deviation), -1, keepdims=True) / count)
    ordered = tf.sort(tf.where(valid, frames, tf.fill(tf.shape(frames), np.inf)), axis=-1)
    last = tf.cast(length - 1, tf.float64)[:, None]
    pos = tf.constant(PERCENTILES, tf.float64)[None, :] / 100.0 * last  # (windows, 9)
    lo, hi = tf.math.floor(pos), tf.math.ceil(pos)
    frac = tf.cast(pos - lo, tf.float32)
    low = tf.gather(ordered, tf.cast(lo, tf.int32), batch_dims=1)
    high = tf.gather(ordered, tf.cast(hi, tf.int32), batch_dims=1)
    pct = low + (high - low) * frac
    spread = pct[:, -1:] - pct[:, :1]
    return tf.ensure_shape(tf.concat([mean, std, spread, pct], axis=-1), [windows, len(STATISTICS)])


def clip_inputs(wave, sample_rate, windows: int = WINDOWS) -> dict:
    """The clip-level model inputs of a whole clip: `clip_features` and `clip_seconds` (1,)."""
    seconds = tf.cast(tf.shape(wave)[0], tf.float32) / tf.cast(sample_rate, tf.float32)
    return {"clip_features": clip_features(wave, windows), "clip_seconds": seconds[None]}


def has_clip_inputs(model) -> bool:
    """Whether a Keras model takes the clip inputs beside its waveform (a dict of inputs)."""
    return isinstance(model.input, dict)


def waveform_input(model):
    """A model's waveform input tensor (its only input, or the "waveform" of a dict)."""
    return model.input["waveform"] if has_clip_inputs(model) else model.inputs[0]
