"""After the model: blending several models, smoothing over neighbouring windows, one row per file.

All of them keep probabilities in [0, 1] and the row order (recordings in order, windows in time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from birdtpu.ensemble import apply_stacker, load_stacker


def smooth(probs: np.ndarray, weights: list[float]) -> np.ndarray:
    """Each window's probabilities as the weighted mean over it and its neighbours in one recording.

    `weights` has odd length and is centred on the window; at the ends of the recording the
    weights of the windows that exist are renormalised.
    """
    w = np.asarray(weights, np.float64)
    if w.size <= 1:
        return probs
    half = len(w) // 2
    n = len(probs)
    padded = np.pad(probs.astype(np.float64), ((half, half), (0, 0)))
    present = np.pad(np.ones(n), (half, half))
    num = sum(w[k] * padded[k : k + n] for k in range(len(w)))
    den = sum(w[k] * present[k : k + n] for k in range(len(w)))
    return (num / den[:, None]).astype(probs.dtype)


def aggregate(probs: np.ndarray, how: str) -> np.ndarray:
    """One row of a recording's windows: their max or mean (`how`)."""
    return probs.max(axis=0, keepdims=True) if how == "max" else probs.mean(axis=0, keepdims=True)


def mean_blend(preds: list[np.ndarray]) -> np.ndarray:
    """The mean of several models' (rows, classes) probabilities."""
    return np.mean(np.stack(preds), axis=0).astype(np.float32)


def load_blender(path: str):
    """The stacker saved at `path` as a function of the models' tables -> the blended table."""
    model = load_stacker(path)
    return lambda tables: apply_stacker(model, tables)


def stack_blend(
    blender, row_ids: list[str], classes: list[str], preds: list[np.ndarray]
) -> np.ndarray:
    """The stacker's blend of several models' probabilities over the same rows, in their order."""
    tables = []
    for p in preds:
        table = pd.DataFrame(p, columns=classes)
        table.insert(0, "row_id", row_ids)
        tables.append(table)
    out = blender(tables).set_index("row_id").loc[row_ids, classes]
    return np.clip(out.to_numpy(np.float32), 0.0, 1.0)
