"""The clip inputs (Freesound 2019 global features) for a model that takes them: computed once over
a whole recording, trimmed as in training (the sidecar's `clip_trim_db`), given to each of its
windows."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from birdtpu.data.clip_features import clip_inputs
from birdtpu.data.crops import trimmed


def _of(wave: np.ndarray, meta: dict) -> dict:
    clip = trimmed(tf.constant(np.asarray(wave, np.float32)), meta["clip_trim_db"])
    return {k: v.numpy() for k, v in clip_inputs(clip, meta["sample_rate"]).items()}


def recording_clip_inputs(runner, wave: np.ndarray) -> dict | None:
    """{input: (1, ...)} of recording `wave` (at the runner's rate), the one row the runner gives
    all its windows, or None for a runner without clip inputs (`Runner.clip_trim_db` None)."""
    if runner.clip_trim_db is None:
        return None
    return {k: v[None] for k, v in _of(wave, runner.meta).items()}


def windows_clip_inputs(meta: dict, waves: np.ndarray) -> dict | None:
    """{input: (windows, ...)}, each window of `waves` taken as a whole clip (export checks), or
    None for a model (sidecar `meta`) without clip inputs."""
    if meta.get("clip_trim_db") is None:
        return None
    each = [_of(w, meta) for w in waves]
    return {k: np.stack([e[k] for e in each]) for k in each[0]}
