"""After the model: blending several models, smoothing over neighbouring windows, one row per file.

All of them keep probabilities in [0, 1] and the row order (recordings in order, windows in time).
`apply_steps` runs the per-recording steps of `infer.postprocess` (`STEPS`) in the recipe's order.
"""

from __future__ import annotations

import difflib
import numbers

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from birdtpu.ensemble import apply_stacker, load_stacker
from birdtpu.errors import ConfigError, DataError, shown


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


def file_confidence(probs: np.ndarray, alpha: float) -> np.ndarray:
    """Each window's probability times the recording's maximum of that class to the power `alpha`.

    `probs` are one recording's (windows, classes); a class the recording is sure of somewhere keeps
    its windows, one it never scores high is damped (BirdCLEF+ 2025 top solutions). alpha 0: none.
    """
    p = probs.astype(np.float64)
    return (p * p.max(axis=0, keepdims=True) ** alpha).astype(probs.dtype)


def rank_blend(preds: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """Weighted mean over models of each model's per-class ranks among the rows, scaled to [0, 1].

    Per class and model: average ranks (ties share their mean rank) r = 1..n, scaled as
    (r - 1) / (n - 1), so the lowest row scores 0 and the highest 1; a tied column and a single row
    score 0.5. `weights` (one per model, >= 0, positive sum) are normalised; none: equal.
    """
    shapes = {np.shape(p) for p in preds}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise DataError(
            f"rank_blend: expected models' (rows, classes) arrays of one shape, got {shapes}"
        )
    x = np.stack([np.asarray(p, np.float64) for p in preds])
    n = x.shape[1]
    ranks = (rankdata(x, axis=1) - 1) / (n - 1) if n > 1 else np.full_like(x, 0.5)
    w = np.ones(len(preds)) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(preds),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(
            f"rank_blend: expected {len(preds)} weights >= 0 with a positive sum, got {weights}"
        )
    return np.tensordot(w / w.sum(), ranks, axes=1).astype(np.float32)


def _number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)


def _smooth_weights(value) -> list[float]:
    if not (
        isinstance(value, list)
        and len(value) % 2 == 1
        and all(_number(v) and v >= 0 for v in value)
        and sum(value) > 0
    ):
        raise ValueError("expected an odd number of weights >= 0 with a positive sum")
    return [float(v) for v in value]


def _alpha(value) -> float:
    if not (_number(value) and value >= 0):
        raise ValueError("expected a number >= 0")
    return float(value)


# step name -> (function of one recording's probabilities and the value, check of the value)
STEPS = {"smooth": (smooth, _smooth_weights), "file_confidence": (file_confidence, _alpha)}
KEY = "infer.postprocess"


def check_steps(steps: list) -> list[tuple[str, object]]:
    """The (name, checked value) of each step of `infer.postprocess`, or ConfigError naming it.

    Each step is a one-key mapping, e.g. `[{smooth: [0.25, 0.5, 0.25]}, {file_confidence: 0.5}]`.
    """
    if not isinstance(steps, list):
        raise ConfigError(f"{KEY}: expected a list of steps, got {shown(steps)}")
    checked = []
    for i, step in enumerate(steps):
        where = f"{KEY}[{i}]"
        if not (isinstance(step, dict) and len(step) == 1):
            raise ConfigError(
                f"{where}: expected one `name: value` mapping such as {{file_confidence: 0.5}}, "
                f"got {shown(step)}"
            )
        ((name, value),) = step.items()
        if name not in STEPS:
            near = difflib.get_close_matches(str(name), list(STEPS), n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]}?" if near else f"; valid: {', '.join(STEPS)}"
            raise ConfigError(f"{where}: unknown step {shown(name)}{hint}")
        try:
            checked.append((name, STEPS[name][1](value)))
        except ValueError as err:
            raise ConfigError(f"{where} ({name}): {err}, got {shown(value)}") from None
    return checked


def apply_steps(probs_by_file: dict[str, np.ndarray], steps: list) -> dict[str, np.ndarray]:
    """`steps` (see `check_steps`) applied in order to each recording's (windows, classes)."""
    checked = check_steps(steps)
    out = {}
    for name, probs in probs_by_file.items():
        for step, value in checked:
            probs = STEPS[step][0](probs, value)
        out[name] = probs
    return out
