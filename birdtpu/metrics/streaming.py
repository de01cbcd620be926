"""Streaming Keras metrics: the competition metrics computed from batches, across replicas.

`MacroROCAUC`, `PaddedCMAP`, `MacroPRAUC`, `LWLRAP` and `TopKAccuracy` give the numbers of
`birdtpu.metrics.scores` within float32 rounding (see their docstrings).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from birdtpu.saving import register


def _rows(y_true, y_pred, sample_weight):
    """Float32 binary labels (>= 0.5 is a positive), scores and per-row weights of a batch."""
    y = tf.cast(tf.cast(y_true, tf.float32) >= 0.5, tf.float32)
    s = tf.cast(y_pred, tf.float32)
    w = (
        tf.ones_like(s[:, 0])
        if sample_weight is None
        else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    )
    return y, s, w


@register
class LWLRAP(keras.metrics.Metric):
    """Streaming lwlrap: exact, because it sums per (row, label) precisions.

    The state is two vectors (precision sum and label count per class) that add across batches
    and replicas. Soft labels (mixup, smoothing) count as positives at >= 0.5. Equals `lwlrap`
    up to float32 rounding (relative 1e-6).
    """

    def __init__(self, num_classes: int, name: str = "lwlrap", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.precision_sum = self.add_variable(
            (num_classes,), "zeros", "float32", name="precision_sum"
        )
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
        return tf.math.divide_no_nan(
            tf.reduce_sum(self.precision_sum), tf.reduce_sum(self.label_count)
        )

    def get_config(self):
        return {"num_classes": self.num_classes, **super().get_config()}


@register
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

    def __init__(
        self, num_classes: int, capacity: int = 16384, name: str | None = None, dtype=None
    ):
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
    starts = tf.concat(
        [tf.ones([n_classes, 1], tf.int32), tf.cast(s[:, 1:] != s[:, :-1], tf.int32)], 1
    )
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
    return tf.where(
        p > 0, tf.math.divide_no_nan(tf.reduce_sum(pos * precision_at_end, 1), p), np.nan
    )


def _nan_mean(values):
    """Mean of the non-NaN values; NaN if there are none."""
    keep = ~tf.math.is_nan(values)
    count = tf.reduce_sum(tf.cast(keep, tf.float32))
    total = tf.reduce_sum(tf.where(keep, values, 0.0))
    return tf.where(count > 0, total / tf.maximum(count, 1.0), np.nan)


@register
class MacroROCAUC(_ScoreBuffer):
    """Exact streaming `macro_roc_auc` (BirdCLEF 2024); NaN while no class has both sides."""

    def __init__(
        self, num_classes: int, capacity: int = 16384, name: str = "macro_roc_auc", dtype=None
    ):
        super().__init__(num_classes, capacity, name=name, dtype=dtype)

    def _score(self, labels, scores, weights):
        return _nan_mean(_tf_roc_auc(labels, scores, weights))


@register
class MacroPRAUC(_ScoreBuffer):
    """Exact streaming `macro_pr_auc`; NaN while no class has a positive."""

    def __init__(
        self, num_classes: int, capacity: int = 16384, name: str = "macro_pr_auc", dtype=None
    ):
        super().__init__(num_classes, capacity, name=name, dtype=dtype)

    def _score(self, labels, scores, weights):
        return _nan_mean(_tf_average_precision(labels, scores, weights))


@register
class PaddedCMAP(_ScoreBuffer):
    """Exact streaming `padded_cmap` (BirdCLEF 2023): the padding rows are added in result()."""

    def __init__(
        self,
        num_classes: int,
        capacity: int = 16384,
        padding: int = 5,
        name: str = "padded_cmap",
        dtype=None,
    ):
        super().__init__(num_classes, capacity, name=name, dtype=dtype)
        self.padding = padding

    def _score(self, labels, scores, weights):
        ones = tf.ones([self.padding, self.num_classes])
        return tf.reduce_mean(
            _tf_average_precision(
                tf.concat([labels, ones], 0),
                tf.concat([scores, ones], 0),
                tf.concat([weights, ones[:, 0]], 0),
            )
        )

    def get_config(self):
        return {"padding": self.padding, **super().get_config()}
