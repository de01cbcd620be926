"""The runner interface every model format implements: windows in, probabilities out."""

from __future__ import annotations

import numpy as np

from birdtpu.errors import DataError

FRONTEND_CHUNK = 4  # windows per host-frontend call: its 3-MB-per-window STFT frames stay in cache


class Runner:
    """A loaded model: `runner(windows)` -> (n, classes) float32 probabilities.

    Attributes: `path`, `format`, `meta` (the sidecar), `samples` (input window length).
    """

    format = ""

    def __init__(self, path: str, meta: dict, samples: int, batch_size: int):
        self.path, self.meta, self.samples, self.batch_size = (
            path,
            meta,
            int(samples),
            int(batch_size),
        )
        self.classes = list(meta["classes"])

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        if waves.ndim != 2 or waves.shape[1] != self.samples:
            raise DataError(
                f"{self.path}: expects windows of {self.samples} samples, got shape {waves.shape}"
            )
        out = [
            self._run(np.ascontiguousarray(waves[i : i + self.batch_size], np.float32))
            for i in range(0, len(waves), self.batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def run_in_slices(batch: np.ndarray, parts: int, slice_fn, pool) -> np.ndarray:
    """`slice_fn(k, slice_k)` over `batch` cut into `parts` slices, at once on `pool` (a thread
    pool, or None: one after the other), concatenated in order."""
    step = -(-len(batch) // parts)
    slices = [batch[i : i + step] for i in range(0, len(batch), step)]
    if pool is None or len(slices) == 1:
        return np.concatenate([slice_fn(k, s) for k, s in enumerate(slices)])
    return np.concatenate(list(pool.map(slice_fn, range(len(slices)), slices)))
