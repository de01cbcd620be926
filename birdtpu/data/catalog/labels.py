"""Class lists and multi-hot targets of a catalog."""

from __future__ import annotations

from itertools import chain

import numpy as np
import pandas as pd

from birdtpu.errors import DataError


def label_map(df: pd.DataFrame, primary_only: bool = False) -> list[str]:
    """Sorted class names over primary and secondary labels (or primary labels only)."""
    if primary_only:
        return sorted(df["label"].unique())
    return sorted(set(chain.from_iterable(df["labels"])))


def targets(df: pd.DataFrame, classes: list[str], secondary_weight: float = 1.0) -> np.ndarray:
    """Multi-hot float32 (rows, classes): 1 for the first label, `secondary_weight` for the others.

    Rows with `positive` False (Rainforest fp boxes) are all zeros. A label outside `classes`
    raises DataError naming the row.
    """
    lists = df["labels"].tolist()
    lengths = np.fromiter(map(len, lists), np.int64, len(lists))
    cols = pd.Index(classes).get_indexer(list(chain.from_iterable(lists)))
    rows = np.repeat(np.arange(len(lists)), lengths)
    if (cols < 0).any():
        k = int(np.argmax(cols < 0))
        label = list(chain.from_iterable(lists))[k]
        raise DataError(f"catalog row {rows[k]}: label {label!r} is not in the label map")
    first = np.zeros(len(cols), bool)
    first[np.cumsum(lengths)[lengths > 0] - lengths[lengths > 0]] = True
    out = np.zeros((len(lists), len(classes)), np.float32)
    out[rows[~first], cols[~first]] = secondary_weight
    out[rows[first], cols[first]] = 1.0
    if "positive" in df.columns:
        out[~df["positive"].to_numpy(bool)] = 0.0
    return out
