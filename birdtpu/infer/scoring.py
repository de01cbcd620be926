"""Score predictions against per-window truth (`soundscape_labels.csv`) when a dataset has it.

Truth rows `<stem>_<end second>` cover (previous end, end]; a predicted row covers its window
[end - window_seconds, end]. Each truth row takes the highest prediction among the windows that
overlap it, so predictions in other window lengths, with overlap or shifted, are still scored;
where the ids are the same this is the plain row-by-row match. With `infer.aggregate`, recordings
are scored at file level (the max of the truth over a file's windows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from birdtpu import rowid
from birdtpu.errors import DataError
from birdtpu.metrics import ROW_ID, file_level, macro_roc_auc, read_table


def align_windows(
    truth: pd.DataFrame, pred: pd.DataFrame, classes: list[str], window: float, name: str = "truth"
) -> tuple[np.ndarray, np.ndarray]:
    """(truth, score) rows for the truth rows of predicted recordings that some window overlaps."""
    t_stem, t_end = rowid.split(truth[ROW_ID], name)
    p_stem, p_end = rowid.split(pred[ROW_ID], "predictions")
    t_val, p_val = truth[classes].to_numpy(np.float64), pred[classes].to_numpy(np.float64)
    y, s = [], []
    for stem in pd.unique(t_stem[t_stem.isin(set(p_stem))]):
        ti = np.flatnonzero((t_stem == stem).to_numpy())
        ti = ti[np.argsort(t_end[ti])]
        t_hi = t_end[ti]
        t_lo = np.concatenate([[0.0], t_hi[:-1]])
        pi = np.flatnonzero((p_stem == stem).to_numpy())
        p_hi = p_end[pi]
        overlap = (
            np.minimum(t_hi[:, None], p_hi[None, :])
            - np.maximum(t_lo[:, None], p_hi[None, :] - window)
            > 1e-6
        )
        for j in np.flatnonzero(overlap.any(axis=1)):
            y.append(t_val[ti[j]])
            s.append(p_val[pi[overlap[j]]].max(axis=0))
    return np.asarray(y).reshape(-1, len(classes)), np.asarray(s).reshape(-1, len(classes))


def score_against_truth(
    table: pd.DataFrame, truth_path: str, classes: list[str], infer, log=print
) -> dict:
    """{macro_roc_auc, truth_rows} of `table` (row_id + classes) against `truth_path`, or {} with
    a logged reason where it cannot be scored (no overlapping rows, no class with both labels)."""
    truth = read_table(truth_path)
    missing = [c for c in classes if c not in truth.columns]
    if missing:
        log(f"predict: not scored: {truth_path} has no column {missing[0]!r}")
        return {}
    if infer.aggregate != "none":
        files = file_level(truth[[ROW_ID, *classes]], "max", truth_path)
        files = files[files[ROW_ID].isin(set(table[ROW_ID]))]
        y = files[classes].to_numpy(np.float64)
        s = table.set_index(ROW_ID).loc[files[ROW_ID], classes].to_numpy(np.float64)
    else:
        y, s = align_windows(truth, table, classes, infer.window_seconds, truth_path)
    if not len(y):
        log(f"predict: not scored: {truth_path} has no rows for the predicted recordings")
        return {}
    try:
        return {"macro_roc_auc": macro_roc_auc(y > 0, s), "truth_rows": len(y)}
    except DataError as err:
        log(f"predict: not scored against {truth_path}: {err}")
        return {}
