"""The canonical catalog columns, their defaults, and label-list cells parsed to lists."""

from __future__ import annotations

import ast
import math
import re

import numpy as np

from birdtpu.errors import DataError

CANONICAL = [
    "filepath",
    "filename",
    "label",
    "labels",
    "source",
    "xc_id",
    "author",
    "rating",
    "duration",
    "latitude",
    "longitude",
    "t_min",
    "t_max",
    "f_min",
    "f_max",
    "songtype",
    "positive",
    "other_labels",
]
DROPPED = ["filepath", "source", "reason", "detail"]
LIST_COLUMNS = ("labels", "other_labels")
BOXES = ("t_min", "t_max", "f_min", "f_max")

_EMPTY: list[str] = []  # shared by every row without other labels; never mutated
_SIMPLE_LIST = re.compile(r"\[\s*'[^'\\]*'(?:\s*,\s*'[^'\\]*')*\s*,?\s*\]")
_QUOTED = re.compile(r"'([^'\\]*)'")
_DEFAULTS = {
    "xc_id": np.nan,
    "author": np.nan,
    "rating": np.nan,
    "duration": np.nan,
    "latitude": np.nan,
    "longitude": np.nan,
    "t_min": np.nan,
    "t_max": np.nan,
    "f_min": np.nan,
    "f_max": np.nan,
    "songtype": np.nan,
    "positive": True,
}


def parse_label_list(value, where: str) -> list[str]:
    """A `secondary_labels` cell ("['a', 'b']" or "[]") as a list of strings."""
    if isinstance(value, list):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    try:
        return _parse_list(value)
    except ValueError as err:
        raise DataError(f"{where}: {err}") from None


def _parse_list(cell) -> list[str]:
    text = str(cell).strip()
    if text in ("", "[]"):
        return []
    if _SIMPLE_LIST.fullmatch(text):  # "['a', 'b']" without escapes: 5x faster than literal_eval
        return [s for s in (v.strip() for v in _QUOTED.findall(text)) if s]
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"malformed label list {cell!r} (expected like ['a', 'b'])")
    return [s for s in (str(v).strip() for v in value) if s]


def _objects(items) -> np.ndarray:
    """A 1-d object array of `items` (numpy would make equal-length lists a 2-d array)."""
    items = list(items)
    out = np.empty(len(items), object)
    for i, item in enumerate(items):
        out[i] = item
    return out
