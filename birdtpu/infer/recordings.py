"""Recordings to predict: listing a folder's audio files and decoding them, the next in the background.

A recording is decoded once per sample rate the models need (any rate, mono or stereo -> the
mean of the channels). One that cannot be decoded or has no samples comes back as its AudioError,
so the caller names it, counts it and goes on.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from birdtpu import fs
from birdtpu.data.audio import AUDIO_EXTENSIONS, AudioError, container_problem, load_audio
from birdtpu.errors import DataError
from birdtpu.fs import join


def list_recordings(folder: str) -> list[str]:
    """Audio files directly in `folder` (local or gs://), sorted."""
    if not fs.exists(folder):
        raise DataError(f"{folder}: soundscape folder not found")
    names = sorted(n for n in fs.listdir(folder) if n.lower().endswith(AUDIO_EXTENSIONS))
    return [join(folder, n) for n in names]


def decode(path: str, rates: list[int]) -> dict[int, np.ndarray]:
    """{rate: mono float32 wave} of `path`; AudioError where it is unreadable or has no samples."""
    out = {}
    for rate in rates:
        wave, _ = load_audio(path, rate, check=False)
        if wave.size == 0:
            raise AudioError(path, container_problem(path) or "empty (no samples)")
        out[rate] = wave
    return out


def decoded(paths: list[str], rates: list[int], ahead: int = 2):
    """(path, (waves or the AudioError, why it is cut short or None)) in order, decoding up to
    `ahead` files in a background thread."""

    def job(path):
        try:
            return decode(path, rates), container_problem(path)
        except AudioError as err:
            return err, None

    with ThreadPoolExecutor(1) as pool:
        queue = deque((p, pool.submit(job, p)) for p in paths[:ahead])
        rest = iter(paths[ahead:])
        while queue:
            path, future = queue.popleft()
            nxt = next(rest, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(job, nxt)))
            yield path, future.result()
