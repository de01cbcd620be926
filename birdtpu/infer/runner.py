"""The runner interface every model format implements: windows in, probabilities out."""

from __future__ import annotations

import numpy as np

from birdtpu.data.clip_features import INPUTS as CLIP_INPUTS
from birdtpu.errors import DataError

FRONTEND_CHUNK = 4  # windows per host-frontend call: its 3-MB-per-window STFT frames stay in cache


class Runner:
    """A loaded model: `runner(windows)` -> (n, classes) float32 probabilities.

    Attributes: `path`, `format`, `meta` (the sidecar), `samples` (input window length),
    `clip_trim_db` (the sidecar's: the model also takes each window's clip inputs, the Freesound
    2019 global features of its recording trimmed at that dB, `runner(windows, clip)`: one row
    per window, or one row for all of them; else None).
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
        self.clip_trim_db = meta.get("clip_trim_db")

    def __call__(self, waves: np.ndarray, clip: dict | None = None) -> np.ndarray:
        if waves.ndim != 2 or waves.shape[1] != self.samples:
            raise DataError(
                f"{self.path}: expects windows of {self.samples} samples, got shape {waves.shape}"
            )
        if (clip is None) != (self.clip_trim_db is None):
            raise DataError(
                f"{self.path}: the model takes {'no' if clip is not None else 'the'} clip inputs "
                "(global features of each window's recording: infer.clip_inputs)"
            )
        if clip is not None:  # one row (a recording's) serves all its windows
            clip = {k: np.broadcast_to(v, (len(waves), *v.shape[1:])) for k, v in clip.items()}
        out = []
        for i in range(0, len(waves), self.batch_size):
            batch = np.ascontiguousarray(waves[i : i + self.batch_size], np.float32)
            if clip is None:
                out.append(self._run(batch))
            else:
                part = {
                    k: np.ascontiguousarray(v[i : i + self.batch_size], np.float32)
                    for k, v in clip.items()
                }
                out.append(self._run(batch, part))
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def _run(self, batch: np.ndarray, clip: dict | None = None) -> np.ndarray:
        raise NotImplementedError


def input_roles(path: str, names: list[str], clip: bool) -> list[str]:
    """What each input of an exported file (by its names) takes: "clip_features", "clip_seconds"
    (the clip inputs, named so by the export), or "main" (the waveform or the mel image)."""
    roles = [next((k for k in CLIP_INPUTS if k in name), "main") for name in names]
    if roles.count("main") != 1 or (len(roles) > 1) != clip or len(set(roles)) != len(roles):
        raise DataError(
            f"{path}: inputs {names} do not fit its sidecar "
            f"({'with' if clip else 'without'} clip inputs); export it again"
        )
    return roles


def run_in_slices(batch: np.ndarray, clip: dict | None, parts: int, slice_fn, pool) -> np.ndarray:
    """`slice_fn(k, slice_k, clip_k)` over `batch` and its clip inputs (`clip`, {} where None) cut
    into `parts` slices, at once on `pool` (a thread pool, or None: one after the other),
    concatenated in order."""
    step = -(-len(batch) // parts)
    starts = range(0, len(batch), step)
    waves = [batch[i : i + step] for i in starts]
    clips = [{n: v[i : i + step] for n, v in (clip or {}).items()} for i in starts]
    if pool is None or len(waves) == 1:
        return np.concatenate([slice_fn(k, w, c) for k, (w, c) in enumerate(zip(waves, clips))])
    return np.concatenate(list(pool.map(slice_fn, range(len(waves)), waves, clips)))
