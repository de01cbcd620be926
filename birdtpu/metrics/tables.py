"""Prediction and truth tables (`row_id` + one column per class): reading, checks, alignment.

`read_table`, `check_table`, `align_tables`, `birdclef2024_score`, and `file_level` (window rows
`<soundscape>_<end second>` -> one row per soundscape).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from birdtpu import fs, rowid
from birdtpu.errors import DataError, shown
from birdtpu.metrics.scores import macro_roc_auc

ROW_ID = "row_id"


def read_table(path: str) -> pd.DataFrame:
    """A prediction or truth CSV with a `row_id` column (local or gs://), or DataError."""
    if not fs.exists(path):
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(io.StringIO(fs.read_text(path)))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if ROW_ID not in df.columns:
        raise DataError(
            f"{path}: no `{ROW_ID}` column (found: {', '.join(map(str, df.columns[:5]))})"
        )
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
                f"{name}: row {ids.iloc[i]!r}, column {col!r}: {shown(df[col].iloc[i])} is not a finite number"
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
            raise DataError(
                f"{nb}: {ROW_ID} {first!r} of {na} is missing ({len(extra)} rows in all)"
            )
    y_true = truth[classes].to_numpy(dtype=np.float64)
    bad = np.argwhere((y_true != 0) & (y_true != 1))
    if len(bad):
        r, c = bad[0]
        raise DataError(
            f"{names[0]}: row {truth[ROW_ID].iloc[r]!r}, column {classes[c]!r}: truth must be 0 or 1"
        )
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
    files, _ = rowid.split(df[ROW_ID], name)
    files = files.rename(ROW_ID).set_axis(df.index)
    return df.drop(columns=ROW_ID).groupby(files, sort=True).agg(how).reset_index()
