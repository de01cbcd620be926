"""Competition metrics: NumPy/pandas functions, their CSV checks, and streaming Keras metrics.

NumPy functions take `y_true` (rows x classes, 0 or 1) and `y_score` (same shape, finite) and
return a float; bad input raises `DataError` with one line. Each function is checked against an
independent reference (scikit-learn, or the Freesound 2019 per-sample code) in tests/.

| name              | competition                | definition                                      |
|-------------------|----------------------------|-------------------------------------------------|
| padded_cmap       | BirdCLEF 2023              | macro AP after appending 5 rows of ones         |
| macro_roc_auc     | BirdCLEF 2024              | macro ROC-AUC over classes with a positive      |
| lwlrap            | Freesound 2019, Rainforest | label-weighted label-ranking average precision  |
| lrap              | (scikit-learn)             | sample-averaged label-ranking average precision |
| macro_pr_auc      |                            | macro AP over classes with a positive           |
| top{1,5}_accuracy |                            | a true label among the k highest scores         |

Tables (`row_id` + one column per class): `read_table`, `align_tables`, `birdclef2024_score`, and
`file_level` (window rows `<soundscape>_<end second>` -> one row per soundscape).

The Keras metrics (`MacroROCAUC`, `PaddedCMAP`, `MacroPRAUC`, `LWLRAP`, `TopKAccuracy`) give
the same numbers from batches, across replicas, within float32 rounding (see their docstrings).
"""

from __future__ import annotations

import functools
import io
from typing import Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from scipy.stats import rankdata

from birdtpu import io as bio
from birdtpu.errors import DataError

ROW_ID = "row_id"


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
        raise DataError(f"y_true must be 0 or 1; row {r}, column {c} is {y_true[r, c]!r}")
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
    return _nanmean(per_class_roc_auc(y_true, y_score),
                    "ROC-AUC is undefined: no class has both a positive and a negative row")


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
    return _nanmean(per_class_average_precision(y_true, y_score), "PR-AUC is undefined: no class has a positive row")


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


# --------------------------------------------------------------------------- tables


def read_table(path: str) -> pd.DataFrame:
    """A prediction or truth CSV with a `row_id` column (local or gs://), or DataError."""
    if not bio.exists(path):
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(io.StringIO(bio.read_text(path)))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if ROW_ID not in df.columns:
        raise DataError(f"{path}: no `{ROW_ID}` column (found: {', '.join(map(str, df.columns[:5]))})")
    return df


def check_table(df: pd.DataFrame, name: str) -> None:
    """DataError naming `name`, the row and the column of a missing id, duplicate, text or NaN."""
    if ROW_ID not in df.columns:
        raise DataError(f"{name}: no `{ROW_ID}` column")
    ids = df[ROW_ID]
    if ids.isna().any():
        raise DataError(f"{name}: line {int(np.flatnonzero(ids.isna())[0]) + 2}: empty {ROW_ID}")
    dup = ids.duplicated()
    if dup.any():
        raise DataError(f"{name}: {ROW_ID} {ids[dup].iloc[0]!r} appears more than once")
    for col in df.columns.drop(ROW_ID):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{name}: row {ids.iloc[i]!r}, column {col!r}: {df[col].iloc[i]!r} is not a finite number"
            )


def align_tables(
    truth: pd.DataFrame, pred: pd.DataFrame, names: tuple[str, str] = ("truth", "pred")
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(y_true, y_score, classes) with the prediction's rows and columns in the truth's order.

    Both tables need `row_id` and the same class columns and row ids, no NaN, truth in {0, 1};
    otherwise DataError names the file (`names`), the row and the column.
    """
    check_table(truth, names[0])
    check_table(pred, names[1])
    classes = [c for c in truth.columns if c != ROW_ID]
    for a, b, (na, nb) in ((truth, pred, names), (pred, truth, names[::-1])):
        missing = [c for c in a.columns if c not in b.columns]
        if missing:
            raise DataError(f"{nb}: column {missing[0]!r} of {na} is missing")
        extra = set(a[ROW_ID]) - set(b[ROW_ID])
        if extra:
            first = a[ROW_ID][a[ROW_ID].isin(extra)].iloc[0]
            raise DataError(f"{nb}: {ROW_ID} {first!r} of {na} is missing ({len(extra)} rows in all)")
    y_true = truth[classes].to_numpy(dtype=np.float64)
    bad = np.argwhere((y_true != 0) & (y_true != 1))
    if len(bad):
        r, c = bad[0]
        raise DataError(f"{names[0]}: row {truth[ROW_ID].iloc[r]!r}, column {classes[c]!r}: truth must be 0 or 1")
    pred = pred.set_index(ROW_ID).loc[truth[ROW_ID], classes]
    return y_true, pred.to_numpy(dtype=np.float64), classes


def birdclef2024_score(solution: pd.DataFrame, submission: pd.DataFrame) -> float:
    """The BirdCLEF 2024 score of submission-shaped tables (`row_id` + one column per class)."""
    y_true, y_score, _ = align_tables(solution, submission, ("solution", "submission"))
    return macro_roc_auc(y_true, y_score)


def file_level(df: pd.DataFrame, how: str = "max", name: str = "table") -> pd.DataFrame:
    """One row per soundscape from window rows `<soundscape>_<end second>`: max or mean of windows."""
    if how not in ("max", "mean"):
        raise ValueError(f"how must be 'max' or 'mean', not {how!r}")
    check_table(df, name)
    parts = df[ROW_ID].astype(str).str.rsplit("_", n=1)
    bad = parts.map(lambda p: len(p) != 2 or not p[1].isdigit())
    if bad.any():
        raise DataError(
            f"{name}: {ROW_ID} {df[ROW_ID][bad].iloc[0]!r} is not <soundscape>_<end second>"
        )
    files = parts.str[0].rename(ROW_ID)
    return df.drop(columns=ROW_ID).groupby(files, sort=True).agg(how).reset_index()


# --------------------------------------------------------------------------- Keras metrics


def _rows(y_true, y_pred, sample_weight):
    """Float32 binary labels (>= 0.5 is a positive), scores and per-row weights of a batch."""
    y = tf.cast(tf.cast(y_true, tf.float32) >= 0.5, tf.float32)
    s = tf.cast(y_pred, tf.float32)
    w = tf.ones_like(s[:, 0]) if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return y, s, w


@keras.saving.register_keras_serializable(package="birdtpu")
class LWLRAP(keras.metrics.Metric):
    """Streaming lwlrap: exact, because it sums per (row, label) precisions.

    The state is two vectors (precision sum and label count per class) that add across batches
    and replicas. Soft labels (mixup, smoothing) count as positives at >= 0.5. Equals `lwlrap`
    up to float32 rounding (relative 1e-6).
    """

    def __init__(self, num_classes: int, name: str = "lwlrap", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.precision_sum = self.add_variable((num_classes,), "zeros", "float32", name="precision_sum")
        self.label_count = self.add_variable((num_classes,), "zeros", "float32", name="label_count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, s, w = _rows(y_true, y_pred, sample_weight)
        at_or_above = tf.cast(s[:, None, :] >= s[:, :, None], tf.float32)  # [row, label j, label k]
        rank_all = tf.reduce_sum(at_or_above, axis=-1)
        rank_pos = tf.reduce_sum(at_or_above * y[:, None, :], axis=-1)
        precision = y * rank_pos / rank_all
        self.precision_sum.assign_add(tf.reduce_sum(precision * w[:, None], axis=0))
        self.label_count.assign_add(tf.reduce_sum(y * w[:, None], axis=0))

    def result(self):
        return tf.math.divide_no_nan(tf.reduce_sum(self.precision_sum), tf.reduce_sum(self.label_count))

    def get_config(self):
        return {"num_classes": self.num_classes, **super().get_config()}


@keras.saving.register_keras_serializable(package="birdtpu")
class TopKAccuracy(keras.metrics.Metric):
    """Streaming `top_k_accuracy` for multi-label targets (rows without a label are skipped)."""

    def __init__(self, k: int = 1, name: str | None = None, dtype=None):
        super().__init__(name=name or f"top{k}_accuracy", dtype=dtype)
        self.k = k
        self.hits = self.add_variable((), "zeros", "float32", name="hits")
        self.count = self.add_variable((), "zeros", "float32", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, s, w = _rows(y_true, y_pred, sample_weight)
        kth = tf.math.top_k(s, k=min(self.k, s.shape[-1])).values[:, -1:]
        hit = tf.reduce_any((s >= kth) & (y > 0), axis=-1)
        labelled = tf.cast(tf.reduce_any(y > 0, axis=-1), tf.float32) * w
        self.hits.assign_add(tf.reduce_sum(tf.cast(hit, tf.float32) * labelled))
        self.count.assign_add(tf.reduce_sum(labelled))

    def result(self):
        return tf.math.divide_no_nan(self.hits, self.count)

    def get_config(self):
        return {"k": self.k, **super().get_config()}


class _ScoreBuffer(keras.metrics.Metric):
    """Base of the exact ranking metrics: keeps every (labels, scores, weight) row of an epoch.

    ROC-AUC and AP depend on the order of all scores, so a fixed number of bins (as in
    keras.metrics.AUC) only approximates them. Here each replica writes its rows into its own
    segment of fixed-size buffers (`capacity` rows shared by the replicas; static shapes for XLA);
    other segments stay zero, so the SUM that tf.distribute applies when the result is read
    outside the replicas concatenates them. Rows past a full segment are not kept and the result
    is NaN, so an overflow is never silent: make `capacity` at least the rows of an epoch (plus
    one batch per replica for uneven splits). A row of weight 0 (padding) is kept but ignored.

    Cost: 8 x capacity x classes bytes per replica, and result() sorts the buffers; Keras calls it
    after every step (about 0.2 s on 2 CPU cores at 8192 rows x 182 classes). For cheap
    monitoring during training keras.metrics.AUC(multi_label=True) approximates ROC-AUC with
    binned thresholds; these give the competition's number.
    """

    def __init__(self, num_classes: int, capacity: int = 16384, name: str | None = None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes, self.capacity = num_classes, capacity
        self._segment = capacity // tf.distribute.get_strategy().num_replicas_in_sync
        if self._segment < 1:
            raise ValueError(f"capacity {capacity} is smaller than the number of replicas")
        self.labels = self.add_variable((capacity, num_classes), "zeros", "float32", name="labels")
        self.scores = self.add_variable((capacity, num_classes), "zeros", "float32", name="scores")
        self.row_weights = self.add_variable((capacity,), "zeros", "float32", name="row_weights")
        self.rows = self.add_variable((), "zeros", "float32", name="rows")
        self.dropped = self.add_variable((), "zeros", "float32", name="dropped")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, s, w = _rows(y_true, y_pred, sample_weight)
        ctx = tf.distribute.get_replica_context()
        replica = tf.cast(ctx.replica_id_in_sync_group if ctx is not None else 0, tf.int32)
        position = tf.cast(self.rows, tf.int32) + tf.range(tf.shape(s)[0])
        fits = tf.cast(position < self._segment, tf.float32)
        index = (replica * self._segment + tf.minimum(position, self._segment - 1))[:, None]
        # every row is written once onto zeros, so adding is writing; overflow rows add zeros
        self.labels.assign(tf.tensor_scatter_nd_add(self.labels.value, index, y * fits[:, None]))
        self.scores.assign(tf.tensor_scatter_nd_add(self.scores.value, index, s * fits[:, None]))
        self.row_weights.assign(tf.tensor_scatter_nd_add(self.row_weights.value, index, w * fits))
        self.rows.assign_add(tf.cast(tf.shape(s)[0], tf.float32))
        self.dropped.assign_add(tf.reduce_sum(1.0 - fits))

    def result(self):
        value = self._score(self.labels.value, self.scores.value, self.row_weights.value)
        return tf.where(self.dropped > 0, tf.constant(np.nan, tf.float32), value)

    def _score(self, labels, scores, weights):
        raise NotImplementedError

    def get_config(self):
        return {"num_classes": self.num_classes, "capacity": self.capacity, **super().get_config()}


def _ranked(labels, scores, weights):
    """Sorted per class (rows = classes, scores descending): positive and negative weight of each
    row, and per row its tie group's positive weight and the cumulative positive and negative
    weight at the group's end."""
    scores_t, labels_t = tf.transpose(scores), tf.transpose(labels)
    n_classes, n_rows = scores_t.shape
    order = tf.argsort(scores_t, axis=1, direction="DESCENDING", stable=True)
    s = tf.gather(scores_t, order, batch_dims=1)
    y = tf.gather(labels_t, order, batch_dims=1)
    w = tf.gather(weights, order)
    pos, neg = y * w, (1.0 - y) * w
    starts = tf.concat([tf.ones([n_classes, 1], tf.int32), tf.cast(s[:, 1:] != s[:, :-1], tf.int32)], 1)
    group = tf.reshape(tf.cumsum(starts, axis=1) - 1 + tf.range(n_classes)[:, None] * n_rows, [-1])

    def per_group(values, reduce):
        out = reduce(tf.reshape(values, [-1]), group, n_classes * n_rows)
        return tf.reshape(tf.gather(out, group), [n_classes, n_rows])

    # cumulative sums never decrease, so a group's maximum is its value at the group's end
    tp_end = per_group(tf.cumsum(pos, axis=1), tf.math.unsorted_segment_max)
    fp_end = per_group(tf.cumsum(neg, axis=1), tf.math.unsorted_segment_max)
    return pos, neg, per_group(pos, tf.math.unsorted_segment_sum), tp_end, fp_end


def _tf_roc_auc(labels, scores, weights):
    """Per-class weighted ROC-AUC (ties count one half); NaN where a class lacks either side."""
    pos, neg, pos_in_group, tp_end, _ = _ranked(labels, scores, weights)
    # a negative is beaten by the positives of the groups above it and half of those tied with it
    pairs = tf.reduce_sum(neg * (tp_end - 0.5 * pos_in_group), axis=1)
    p, n = tf.reduce_sum(pos, axis=1), tf.reduce_sum(neg, axis=1)
    return tf.where((p > 0) & (n > 0), tf.math.divide_no_nan(pairs, p * n), np.nan)


def _tf_average_precision(labels, scores, weights):
    """Per-class weighted average precision (step PR curve); NaN where a class has no positive."""
    pos, _, _, tp_end, fp_end = _ranked(labels, scores, weights)
    p = tf.reduce_sum(pos, axis=1)
    precision_at_end = tf.math.divide_no_nan(tp_end, tp_end + fp_end)
    return tf.where(p > 0, tf.math.divide_no_nan(tf.reduce_sum(pos * precision_at_end, 1), p), np.nan)


def _nan_mean(values):
    """Mean of the non-NaN values; NaN if there are none."""
    keep = ~tf.math.is_nan(values)
    count = tf.reduce_sum(tf.cast(keep, tf.float32))
    total = tf.reduce_sum(tf.where(keep, values, 0.0))
    return tf.where(count > 0, total / tf.maximum(count, 1.0), np.nan)


@keras.saving.register_keras_serializable(package="birdtpu")
class MacroROCAUC(_ScoreBuffer):
    """Exact streaming `macro_roc_auc` (BirdCLEF 2024); NaN while no class has both sides."""

    def __init__(self, num_classes: int, capacity: int = 16384, name: str = "macro_roc_auc", dtype=None):
        super().__init__(num_classes, capacity, name=name, dtype=dtype)

    def _score(self, labels, scores, weights):
        return _nan_mean(_tf_roc_auc(labels, scores, weights))


@keras.saving.register_keras_serializable(package="birdtpu")
class MacroPRAUC(_ScoreBuffer):
    """Exact streaming `macro_pr_auc`; NaN while no class has a positive."""

    def __init__(self, num_classes: int, capacity: int = 16384, name: str = "macro_pr_auc", dtype=None):
        super().__init__(num_classes, capacity, name=name, dtype=dtype)

    def _score(self, labels, scores, weights):
        return _nan_mean(_tf_average_precision(labels, scores, weights))


@keras.saving.register_keras_serializable(package="birdtpu")
class PaddedCMAP(_ScoreBuffer):
    """Exact streaming `padded_cmap` (BirdCLEF 2023): the padding rows are added in result()."""

    def __init__(
        self, num_classes: int, capacity: int = 16384, padding: int = 5, name: str = "padded_cmap", dtype=None
    ):
        super().__init__(num_classes, capacity, name=name, dtype=dtype)
        self.padding = padding

    def _score(self, labels, scores, weights):
        ones = tf.ones([self.padding, self.num_classes])
        return tf.reduce_mean(
            _tf_average_precision(
                tf.concat([labels, ones], 0), tf.concat([scores, ones], 0), tf.concat([weights, ones[:, 0]], 0)
            )
        )

    def get_config(self):
        return {"padding": self.padding, **super().get_config()}
