"""Row ids `<recording>_<end second>` of soundscape windows: format and parse, one way everywhere.

The end second is written as the competitions write it (`x_5`, not `x_5.0`) and with its fraction
where a window ends between seconds (`x_7.5`, from overlapping or offset windows). Parsing splits
at the last `_`, so recording names may hold underscores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from birdtpu.errors import DataError


def format_end(value: float) -> str:
    """An end second as the competitions write it: `5`, not `5.0`; `7.5` where it is not whole."""
    if abs(value - round(value)) < 1e-6:
        return str(int(round(value)))
    return f"{value:.3f}".rstrip("0")


def row_ids(stem: str, ends) -> list[str]:
    """Row ids `<stem>_<end second>` for each end."""
    return [f"{stem}_{format_end(float(e))}" for e in ends]


def split(ids, name: str = "row_id") -> tuple[pd.Series, np.ndarray]:
    """(recording names, end seconds as float64) of ids `<recording>_<end second>`; a DataError
    naming `name` and the first id that is not of that form."""
    ids = pd.Series(ids, dtype=str).reset_index(drop=True)
    parts = ids.str.rsplit("_", n=1)
    ends = pd.to_numeric(parts.str[1], errors="coerce")
    bad = (parts.str.len() != 2) | ends.isna() | (ends < 0)
    if bad.any():
        raise DataError(f"{name}: row id {ids[bad].iloc[0]!r} is not <recording>_<end second>")
    return parts.str[0], ends.to_numpy(np.float64)
