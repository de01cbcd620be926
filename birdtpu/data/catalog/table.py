"""Catalog tables on disk: CSV (plain or gzip) and parquet, list columns kept as lists."""

from __future__ import annotations

import gzip
import io

import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog.columns import LIST_COLUMNS, _objects, parse_label_list
from birdtpu.errors import DataError


def write_table(df: pd.DataFrame, path: str) -> None:
    """Write a catalog atomically: `.parquet` (needs pyarrow), else CSV (`.csv`, `.csv.gz`).

    In CSV the list columns are written as Python list strings ("['a', 'b']").
    """
    if path.endswith(".parquet"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError(
                f"{path}: writing parquet needs pyarrow (pip install pyarrow), or write .csv"
            ) from None
        buffer = io.BytesIO()
        df.to_parquet(buffer, index=False)
        fs.atomic_write_bytes(path, buffer.getvalue())
        return
    out = df.assign(**{c: df[c].map(str) for c in LIST_COLUMNS if c in df.columns})
    data = out.to_csv(index=False).encode("utf-8")
    fs.atomic_write_bytes(path, gzip.compress(data, mtime=0) if path.endswith(".gz") else data)


def read_table(path: str) -> pd.DataFrame:
    """A catalog written by write_table (list columns parsed back)."""
    if not fs.exists(path):
        raise DataError(f"{path}: catalog table not found")
    raw = fs.read_bytes(path)
    if path.endswith(".parquet"):
        df = pd.read_parquet(io.BytesIO(raw))
        for c in LIST_COLUMNS:
            if c in df.columns:
                df[c] = df[c].map(list)
        return df
    text = ("filepath", "filename", "label", "labels", "other_labels", "source", "xc_id", "author")
    df = pd.read_csv(
        io.BytesIO(gzip.decompress(raw) if path.endswith(".gz") else raw),
        dtype={c: str for c in text},
    )
    missing = [c for c in ("filepath", "label", "labels") if c not in df.columns]
    if missing:
        raise DataError(f"{path}: not a catalog table (no {', '.join(missing)} column)")
    for c in LIST_COLUMNS:
        if c in df.columns:
            codes, uniq = pd.factorize(df[c].fillna("[]"))
            df[c] = _objects(parse_label_list(u, f"{path} column {c}") for u in uniq)[codes]
    return df
