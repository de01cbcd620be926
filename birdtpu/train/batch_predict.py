"""One batch through a model's compiled predict step, padded for replicas."""

from __future__ import annotations

import numpy as np


def _pad(a: np.ndarray, pad: int) -> np.ndarray:
    return np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)]) if pad else a


def predict_padded(model, batch, replicas: int = 1) -> np.ndarray:
    """float64 outputs of `model.predict_on_batch(batch)` (an array, or a dict of arrays: a model
    with clip inputs); a batch is padded with zeros to a multiple of `replicas` (a JAX batch
    splits evenly over the devices) and the padding dropped."""
    n = len(next(iter(batch.values())) if isinstance(batch, dict) else batch)
    pad = -n % replicas
    if isinstance(batch, dict):
        batch = {k: _pad(v, pad) for k, v in batch.items()}
    else:
        batch = _pad(batch, pad)
    out = np.asarray(model.predict_on_batch(batch), np.float64)
    return out[:n]
