"""Class balance of a catalog: rare classes out of validation, downsampling; seeded.

Counts are per primary label (`column`). Upsampling is not done to a catalog: copies would be
validated; `fit` upsamples the training split only (`data.min_per_class`, birdtpu.data.balance).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from birdtpu.errors import DataError


def _counts(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        raise DataError(f"catalog has no column {column!r} to count classes on")
    return df[column].value_counts()


def filter_rare(df: pd.DataFrame, min_count: int = 5, column: str = "label") -> pd.DataFrame:
    """`df` with a `cv` column: False for rows of classes with fewer than `min_count` rows.

    `cv` False rows are always trained on and never validated (folds give them fold -1). A `cv`
    column already there is kept where it is False.
    """
    counts = _counts(df, column)
    cv = (df[column].map(counts) >= min_count).to_numpy()
    if "cv" in df.columns:
        cv = cv & df["cv"].to_numpy(bool)
    return df.assign(cv=cv)


def downsample(df: pd.DataFrame, max_count: int, seed: int, column: str = "label") -> pd.DataFrame:
    """`df` with at most `max_count` rows per class (a seeded sample without replacement), in order."""
    _counts(df, column)
    order = np.random.default_rng(seed).permutation(len(df))
    rank = df[column].iloc[order].groupby(df[column].iloc[order], sort=False).cumcount().to_numpy()
    keep = np.sort(order[rank < max_count])
    return df.iloc[keep].reset_index(drop=True)
