"""Class balance of the training split, in tf.data after the split: validation is never sampled.

The shards hold every recording once. A run that trains on all folds but one computes, from the
manifest's per-shard class counts, a rate per class: min_count / n for classes with fewer than
`data.min_per_class` clips, max_count / n for those with more than `data.max_per_class`, else 1.
In training each record is then repeated floor(rate) times plus once more with probability
frac(rate) (a fresh, seeded draw every epoch), so a class's expected clips per epoch are the
target count; validation and out-of-fold predictions read each clip exactly once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def class_counts(manifest: dict, fold: int) -> dict[str, int]:
    """Positive clips per class in the training split of validation fold `fold`."""
    counts = {c: 0 for c in manifest["classes"]}
    for entry in manifest["shards"]:
        if entry["fold"] != fold:
            for label, n in entry["per_class"].items():
                counts[label] += n
    return counts


def copy_rates(counts: dict[str, int], classes: list[str], min_count: int, max_count: int):
    """(classes,) float32 expected copies per training record of each class (1: as it is)."""
    n = np.array([counts.get(c, 0) for c in classes], np.float64)
    rates = np.ones(len(classes))
    if min_count:
        low = (n > 0) & (n < min_count)
        rates[low] = min_count / n[low]
    if max_count:
        high = n > max_count
        rates[high] = max_count / n[high]
    return rates.astype(np.float32)


def expected_clips(n_train: int, counts: dict[str, int], classes: list[str], rates) -> int:
    """Training clips per epoch, in expectation, once `rates` are applied to `n_train` clips."""
    extra = sum(counts.get(c, 0) * (float(r) - 1.0) for c, r in zip(classes, rates))
    return max(1, int(round(n_train + extra)))


def balance(records: tf.data.Dataset, rates, seed, deterministic: bool) -> tf.data.Dataset:
    """Repeat each parsed record (a dict with `label` and `positive`) by its class's rate: floor
    plus a seeded coin for the fraction; negatives (positive == 0) keep rate 1."""
    rates = tf.constant(rates, tf.float32)
    draws = tf.data.Dataset.random(seed=seed).map(
        lambda v: tf.cast(v % 1_000_000, tf.float32) / 1_000_000.0
    )

    def copies(record, u):
        rate = tf.where(record["positive"] > 0, tf.gather(rates, record["label"]), 1.0)
        whole = tf.floor(rate)
        n = tf.cast(whole, tf.int64) + tf.cast(u < rate - whole, tf.int64)
        return tf.data.Dataset.from_tensors(record).repeat(n)

    return tf.data.Dataset.zip((records, draws)).interleave(
        copies, cycle_length=1, deterministic=deterministic
    )
