"""Competition metrics as NumPy functions, each checked against an independent reference in tests.

Each takes `y_true` (rows x classes, 0 or 1) and `y_score` (same shape, finite) and returns a
float; bad input raises `DataError` with one line.

| name              | competition                | definition                                      |
|-------------------|----------------------------|-------------------------------------------------|
| padded_cmap       | BirdCLEF 2023              | macro AP after appending 5 rows of ones         |
| macro_roc_auc     | BirdCLEF 2024-2026         | macro ROC-AUC over classes with a positive      |
| lwlrap            | Freesound 2019, Rainforest | label-weighted label-ranking average precision  |
| lrap              | (scikit-learn)             | sample-averaged label-ranking average precision |
| macro_pr_auc      |                            | macro AP over classes with a positive           |
| top{1,5}_accuracy |                            | a true label among the k highest scores         |
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
from scipy.stats import rankdata

from birdtpu.errors import DataError, shown

# --------------------------------------------------------------------------- checks


def _check_arrays(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """`y_true` as bool and `y_score` as float64, both 2-D of one shape, or DataError."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape or y_true.size == 0:
        raise DataError(
            f"y_true and y_score must be non-empty 2-D arrays (rows, classes) of one shape; "
            f"got {y_true.shape} and {y_score.shape}"
        )
    bad = np.argwhere(~np.isfinite(y_score))
    if len(bad):
        raise DataError(f"y_score is not finite at row {bad[0][0]}, column {bad[0][1]}")
    bad = np.argwhere((y_true != 0) & (y_true != 1))
    if len(bad):
        r, c = bad[0]
        raise DataError(f"y_true must be 0 or 1; row {r}, column {c} is {shown(y_true[r, c])}")
    return y_true.astype(bool), y_score


# --------------------------------------------------------------------------- per class


def per_class_roc_auc(y_true, y_score) -> np.ndarray:
    """ROC-AUC of each class (ties count one half); NaN where a class lacks positives or negatives."""
    y, s = _check_arrays(y_true, y_score)
    pos = y.sum(axis=0).astype(np.float64)
    neg = len(y) - pos
    ranks = rankdata(s, axis=0)  # average ranks: ties share their mean rank
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * y).sum(axis=0) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def per_class_average_precision(y_true, y_score) -> np.ndarray:
    """Average precision of each class as scikit-learn computes it (one step per distinct score).

    AP = sum over distinct thresholds of (recall step) x precision; rows with tied scores enter
    together. NaN where a class has no positive.
    """
    y, s = _check_arrays(y_true, y_score)
    order = np.argsort(-s, axis=0, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=0)
    tp = np.cumsum(np.take_along_axis(y, order, axis=0), axis=0, dtype=np.float64)
    group_end = np.ones_like(s_sorted, dtype=bool)
    group_end[:-1] = s_sorted[:-1] != s_sorted[1:]
    # true positives at the end of the previous tie group (tp never decreases)
    tp_prev = np.maximum.accumulate(np.where(group_end, tp, 0.0), axis=0)
    tp_prev = np.vstack([np.zeros((1, s.shape[1])), tp_prev[:-1]])
    precision = tp / np.arange(1, len(s) + 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(group_end, (tp - tp_prev) * precision, 0.0).sum(axis=0) / tp[-1]
    return np.where(tp[-1] > 0, ap, np.nan)


def _nanmean(values: np.ndarray, undefined: str) -> float:
    """Mean over the classes where a metric is defined; DataError with `undefined` where none is."""
    if np.isnan(values).all():
        raise DataError(undefined)
    return float(np.nanmean(values))


# --------------------------------------------------------------------------- competition metrics


def macro_roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """BirdCLEF 2024 score: macro ROC-AUC over classes that have at least one positive.

    Classes without positives are skipped, as in the competition's scorer; a class with no
    negative is skipped too (AUC is undefined there; the competition's scorer would fail).
    """
    return _nanmean(
        per_class_roc_auc(y_true, y_score),
        "ROC-AUC is undefined: no class has both a positive and a negative row",
    )


def soundscape_scores(y_true_windows, y_score_windows) -> dict:
    """`macro_roc_auc` over soundscape windows as {window_macro_auc, classes_scored}.

    classes_scored: how many classes the mean is over (those with a positive and a negative
    window); in a few labelled soundscapes most classes have no call and are skipped.
    """
    auc = per_class_roc_auc(y_true_windows, y_score_windows)
    return {
        "window_macro_auc": _nanmean(
            auc, "ROC-AUC is undefined: no class has both a positive and a negative window"
        ),
        "classes_scored": int(np.isfinite(auc).sum()),
    }


def padded_cmap(y_true, y_score, padding: int = 5) -> float:
    """BirdCLEF 2023 score: macro average precision after appending `padding` rows of ones.

    As in the competition's notebook, the ones go into both truth and prediction, so every class
    has positives and a class with no true positive still scores above zero.
    """
    y, s = _check_arrays(y_true, y_score)
    ones = np.ones((padding, y.shape[1]))
    return float(np.mean(per_class_average_precision(np.vstack([y, ones]), np.vstack([s, ones]))))


def macro_pr_auc(y_true, y_score) -> float:
    """Macro average precision (area under the step PR curve) over classes with a positive."""
    return _nanmean(
        per_class_average_precision(y_true, y_score),
        "PR-AUC is undefined: no class has a positive row",
    )


def _label_precisions(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Precision at each true label in its row's ranking of classes; 0 at negatives.

    For a true label j: (true labels scoring >= s_j) / (labels scoring >= s_j). Ties count
    against the label, as in scikit-learn's LRAP.
    """
    rank_all = rankdata(-s, method="max", axis=1)
    rank_pos = rankdata(np.where(y, -s, np.inf), method="max", axis=1)
    return np.where(y, rank_pos / rank_all, 0.0)


def lwlrap_per_class(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Per-class lwlrap and class weights (share of all true labels); lwlrap = sum(per * weight).

    A class without positives scores 0 with weight 0, as in the Freesound 2019 code.
    """
    y, s = _check_arrays(y_true, y_score)
    precisions = _label_precisions(y, s)
    labels = y.sum(axis=0)
    if labels.sum() == 0:
        raise DataError("lwlrap is undefined: y_true has no positive label")
    return precisions.sum(axis=0) / np.maximum(1, labels), labels / labels.sum()


def lwlrap(y_true, y_score) -> float:
    """Label-weighted label-ranking average precision (Freesound 2019, Rainforest).

    Every true label of every row counts once: the mean, over all (row, true label) pairs, of the
    precision at that label in the row's ranking of classes. Rows with many labels weigh more
    and frequent classes weigh more. Ties in a row count against the label (scikit-learn's
    convention); the official Colab breaks ties by sort order instead, so both agree whenever a
    row's scores are distinct.
    """
    per_class, weights = lwlrap_per_class(y_true, y_score)
    return float(np.sum(per_class * weights))


def lrap(y_true, y_score) -> float:
    """scikit-learn's label-ranking average precision, for comparison with `lwlrap`.

    The same label precisions, averaged per row first and then over rows: every row weighs the
    same whatever its number of labels, and a row with no (or only) true labels scores 1. lwlrap
    instead averages over (row, label) pairs; it equals LRAP weighted by each row's label count.
    """
    y, s = _check_arrays(y_true, y_score)
    counts = y.sum(axis=1)
    per_row = _label_precisions(y, s).sum(axis=1) / np.maximum(1, counts)
    return float(np.mean(np.where((counts == 0) | (counts == y.shape[1]), 1.0, per_row)))


def top_k_accuracy(y_true, y_score, k: int = 1) -> float:
    """Share of rows with a true label among their k highest scores (rows without labels skipped).

    A label is in the top k when fewer than k labels score strictly higher, so ties at the
    boundary count as hits (as tf.math.in_top_k; scikit-learn breaks them by column order).
    """
    y, s = _check_arrays(y_true, y_score)
    labelled = y.any(axis=1)
    if not labelled.any():
        raise DataError("top-k accuracy is undefined: no row has a true label")
    higher = rankdata(-s, method="min", axis=1) - 1  # labels strictly above each label
    return float(((higher < k) & y).any(axis=1)[labelled].mean())


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "padded_cmap": padded_cmap,
    "macro_roc_auc": macro_roc_auc,
    "lwlrap": lwlrap,
    "lrap": lrap,
    "macro_pr_auc": macro_pr_auc,
    "top1_accuracy": functools.partial(top_k_accuracy, k=1),
    "top5_accuracy": functools.partial(top_k_accuracy, k=5),
}
