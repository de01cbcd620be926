"""Recordings cut into fixed windows, and the competition's row ids for them.

A recording of any length gives at least one window; the last one is zero-padded. Windows may
overlap (`hop` shorter than the window), may carry `context` (audio of the neighbours on both
sides, for a model whose clip is longer than the scored window) and may be `shift`ed (test-time
augmentation). Audio outside the recording is zeros. Windows are a strided view of one padded
copy of the recording, so a 10-minute file costs one copy, not one per window.
"""

from __future__ import annotations

import math

import numpy as np

from birdtpu.errors import DataError


def window_count(num_samples: int, size: int, hop: int) -> int:
    """Windows of `size` samples every `hop` samples needed to cover `num_samples` (at least one)."""
    return 1 + math.ceil(max(num_samples - size, 0) / hop)


def window_ends(
    num_samples: int, sample_rate: int, seconds: float, hop: float | None = None
) -> list[float]:
    """End seconds of the windows that cover `num_samples` samples (the ids a recording must have)."""
    size, step = int(round(seconds * sample_rate)), int(round((hop or seconds) * sample_rate))
    return [
        round(i * (hop or seconds) + seconds, 6)
        for i in range(window_count(num_samples, size, step))
    ]


def windows(
    wave: np.ndarray,
    sample_rate: int,
    seconds: float,
    hop: float | None = None,
    context: float = 0.0,
    shift: float = 0.0,
) -> tuple[np.ndarray, list[float]]:
    """(n, samples) windows of `wave` and the end second of each (of the unshifted window).

    Window i covers [i * hop, i * hop + seconds) seconds (`hop` defaults to `seconds`), widened by
    `context` seconds on both sides and moved by `shift` seconds. The result is a read-only view.
    """
    size = int(round(seconds * sample_rate))
    step = int(round((hop or seconds) * sample_rate))
    ctx, off = int(round(context * sample_rate)), int(round(shift * sample_rate))
    width = size + int(round(2 * context * sample_rate))  # exact where the context is half a sample
    if size < 1 or step < 1 or ctx < 0:
        raise ValueError(
            f"windows: {seconds} s windows every {hop} s with {context} s context at {sample_rate} Hz"
        )
    wave = np.asarray(wave, np.float32).reshape(-1)
    n = window_count(len(wave), size, step)
    left = ctx + abs(off)
    right = max(0, (n - 1) * step + width - ctx + abs(off) - len(wave))
    padded = np.pad(wave, (left, right))
    view = np.lib.stride_tricks.sliding_window_view(padded, width)
    first = left - ctx + off
    return view[first : first + (n - 1) * step + 1 : step], window_ends(
        len(wave), sample_rate, seconds, hop
    )


def context_seconds(runner, window_seconds: float) -> float:
    """Seconds of neighbouring audio on each side that fill the model's clip around a window."""
    rate = runner.meta["sample_rate"]
    extra = runner.samples - int(round(window_seconds * rate))
    if extra < 0:
        raise DataError(
            f"{runner.path}: its clip ({runner.meta['clip_seconds']} s) is shorter than "
            f"infer.window_seconds ({window_seconds} s)"
        )
    return extra / (2 * rate)
