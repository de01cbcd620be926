"""Submission files: the id column and class order of a sample submission, checks, atomic write.

Nothing is written unless the table passes `validate_submission`: the id and class columns are
there, ids are unique (and exactly the expected ones, where given), every value is a number in
[0, 1] and none is NaN.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.errors import DataError, shown

ROW_ID = "row_id"


def sample_columns(path: str) -> tuple[str, list[str]]:
    """(id column, class columns in order) from the header of a sample_submission.csv."""
    if not fs.exists(path):
        raise DataError(f"{path}: sample submission not found (infer.sample_submission)")
    try:
        header = pd.read_csv(io.StringIO(fs.read_text(path)), nrows=0)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({str(err).splitlines()[0]})") from None
    columns = [str(c) for c in header.columns]
    if len(columns) < 2:
        raise DataError(f"{path}: expected an id column and class columns, found {columns}")
    return columns[0], columns[1:]


def like_sample(table: pd.DataFrame, path: str, log=print) -> pd.DataFrame:
    """`table` (row_id + classes) with the sample submission's id column name and class order.

    A class of the sample that the table lacks is an error; the table's classes that the sample
    lacks are dropped and counted.
    """
    id_column, classes = sample_columns(path)
    missing = [c for c in classes if c not in table.columns]
    if missing:
        raise DataError(
            f"{path}: class {missing[0]!r} is not a class of the model "
            f"({len(missing)} of {len(classes)} missing)"
        )
    extra = [c for c in table.columns[1:] if c not in set(classes)]
    if extra:
        log(
            f"predict: {len(extra)} class(es) of the model are not in {path} and are left out "
            f"(e.g. {extra[0]})"
        )
    out = table[[table.columns[0], *classes]]
    return out.rename(columns={table.columns[0]: id_column})


def validate_submission(
    table: pd.DataFrame, classes: list[str], expected_ids=None, id_column: str = ROW_ID
) -> None:
    """DataError (one line) unless `table` is a valid submission for `classes`.

    Checks the columns, unique ids, ids equal to `expected_ids` where given, and values: numbers,
    no NaN, all in [0, 1]. The line names the first offending row and column.
    """
    missing = [c for c in [id_column, *classes] if c not in table.columns]
    if missing:
        raise DataError(f"submission: missing column(s) {', '.join(map(repr, missing[:5]))}")
    ids = table[id_column].astype(str)
    dup = ids.duplicated()
    if dup.any():
        raise DataError(
            f"submission: duplicate {id_column} {ids[dup].iloc[0]!r} ({int(dup.sum())} duplicates)"
        )
    if expected_ids is not None:
        want = pd.Index([str(x) for x in expected_ids])
        lost, extra = want.difference(ids, sort=False), pd.Index(ids).difference(want, sort=False)
        if len(lost):
            raise DataError(
                f"submission: {id_column} {lost[0]!r} is missing ({len(lost)} expected rows missing)"
            )
        if len(extra):
            raise DataError(
                f"submission: unexpected {id_column} {extra[0]!r} ({len(extra)} in all)"
            )
    try:
        values = table[list(classes)].to_numpy(np.float64)
    except (TypeError, ValueError):
        bad = next(c for c in classes if pd.to_numeric(table[c], errors="coerce").isna().any())
        raise DataError(f"submission: column {bad!r} holds values that are not numbers") from None
    for test, what in (
        (np.isnan(values), "is NaN"),
        ((values < 0) | (values > 1), "is outside [0, 1]"),
    ):
        if test.any():
            r, c = np.argwhere(test)[0]
            raise DataError(
                f"submission: row {ids.iloc[r]!r}, column {classes[c]!r}: {shown(values[r, c])} {what}"
            )


def write_submission(table: pd.DataFrame, path: str, classes: list[str], expected_ids=None) -> None:
    """Validate `table` (first column: the ids) and write it as CSV atomically (float32 precision)."""
    validate_submission(table, classes, expected_ids, id_column=table.columns[0])
    fs.atomic_write_text(path, table.to_csv(index=False, float_format="%.7g"))
