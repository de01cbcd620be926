"""One batch through a model's compiled predict step, padded for replicas."""

from __future__ import annotations

import numpy as np


def predict_padded(model, batch: np.ndarray, replicas: int = 1) -> np.ndarray:
    """float64 outputs of `model.predict_on_batch(batch)`; a batch is padded with zeros to a
    multiple of `replicas` (a JAX batch splits evenly over the devices) and the padding dropped."""
    pad = -len(batch) % replicas
    if pad:
        batch = np.concatenate([batch, np.zeros((pad, *batch.shape[1:]), batch.dtype)])
    out = np.asarray(model.predict_on_batch(batch), np.float64)
    return out[: len(out) - pad]
