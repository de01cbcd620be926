"""Merging sources: de-duplication, fine-tuning set exclusion, corrupt-file lists, dropped-row tables."""

from __future__ import annotations

import json
import posixpath
from collections import Counter

import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog.columns import CANONICAL, DROPPED
from birdtpu.errors import DataError


def skip_summary(verb: str, reasons, total: int, unit: str) -> str:
    """`<verb>: skipped 3 of 120 <unit>: 2 unreadable, 1 all samples are zero`: each kind of reason
    (its text before " (") with its count, most frequent first, then by name."""
    kinds = Counter(str(r).split(" (")[0] for r in reasons)
    line = f"{verb}: skipped {sum(kinds.values())} of {total} {unit}"
    return line + (
        ": "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kn: (-kn[1], kn[0])))
        if kinds
        else ""
    )


def merge(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Several canonical tables as one (in the given order, which de-duplication keeps first)."""
    if not frames:
        raise DataError("no metadata to merge")
    return pd.concat([f[CANONICAL] for f in frames], ignore_index=True)


def dropped_rows(rows: pd.DataFrame, reason: str, detail) -> pd.DataFrame:
    """A table of dropped rows (columns DROPPED): their filepath and source, a reason and a detail."""
    return pd.DataFrame(
        {
            "filepath": rows["filepath"].to_numpy(),
            "source": rows["source"].to_numpy(),
            "reason": reason,
            "detail": detail.to_numpy() if isinstance(detail, pd.Series) else detail,
        },
        columns=DROPPED,
    )


def no_drops() -> pd.DataFrame:
    """An empty table of dropped rows (columns DROPPED)."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in DROPPED})


def deduplicate(df: pd.DataFrame, keys=("xc_id",)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop rows whose `keys` repeat an earlier row's; rows with a missing key are never duplicates.

    Returns (kept rows, dropped rows with the file they duplicate). `("xc_id", "label", "author")`
    is the BirdCLEF notebooks' rule; `("xc_id",)` also catches an author spelled two ways.
    """
    keys = list(keys)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise DataError(
            f"cannot de-duplicate on {', '.join(missing)}: no such column (have {', '.join(df.columns)})"
        )
    valid = df[keys].notna().all(axis=1)
    dup = df[keys].duplicated(keep="first") & valid
    if not dup.any():
        return df, no_drops()
    first = df.loc[valid].groupby(keys, sort=False)["filepath"].transform("first")
    detail = f"same {'+'.join(keys)} as " + first[dup[valid]]
    return df[~dup].reset_index(drop=True), dropped_rows(df[dup], "duplicate", detail)


def exclude_recordings(
    df: pd.DataFrame, other: pd.DataFrame, keys=("xc_id",), reason: str = "in fine-tuning set"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop rows of `df` whose `keys` (all present) match a row of `other`; returns (kept, dropped)."""
    keys = list(keys)
    theirs = pd.MultiIndex.from_frame(other[keys].dropna())
    hit = pd.MultiIndex.from_frame(df[keys]).isin(theirs) & df[keys].notna().all(axis=1).to_numpy()
    if not hit.any():
        return df, no_drops()
    detail = "+".join(keys) + " " + df.loc[hit, keys].astype(str).agg("+".join, axis=1)
    return df[~hit].reset_index(drop=True), dropped_rows(df[hit], reason, detail)


def read_corrupt_list(path: str) -> dict[str, str]:
    """Entries of a corrupt-file list -> reason.

    JSON: a list of paths, or an object {path: reason}. Text: one path a line, optionally a tab
    and a reason; blank lines and `#` comments are skipped. A path may be a whole filepath or
    its tail (`train_audio/lotduc/XC195038.mp3`, `XC195038.mp3`).
    """
    if not fs.exists(path):
        raise DataError(f"{path}: corrupt-file list not found")
    text = fs.read_text(path)
    if path.endswith(".json") or text.lstrip().startswith(("[", "{")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err})") from None
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
        if isinstance(data, list):
            return {str(k): "in corrupt-file list" for k in data}
        raise DataError(f"{path}: expected a JSON list of paths or an object {{path: reason}}")
    entries = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, reason = line.partition("\t")
            entries[name.strip()] = reason.strip() or "in corrupt-file list"
    return entries


def drop_listed(
    df: pd.DataFrame, entries: dict[str, str]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Drop rows whose filepath is, or ends with, an entry of a corrupt-file list.

    Returns (kept, dropped, entries that matched no row).
    """
    by_name: dict[str, list[str]] = {}
    for entry in entries:
        by_name.setdefault(posixpath.basename(entry.rstrip("/")), []).append(entry)
    basename = df["filepath"].str.rsplit("/", n=1).str[-1]
    hit = np.zeros(len(df), bool)
    detail = np.empty(len(df), object)
    used = set()
    for i in np.flatnonzero(basename.isin(list(by_name)).to_numpy()):
        filepath = df["filepath"].iat[i]
        for entry in by_name[basename.iat[i]]:
            if filepath == entry or filepath.endswith("/" + entry.strip("/")):
                hit[i], detail[i] = True, f"{entry}: {entries[entry]}"
                used.add(entry)
    unmatched = [e for e in entries if e not in used]
    if not hit.any():
        return df, no_drops(), unmatched
    return (
        df[~hit].reset_index(drop=True),
        dropped_rows(df[hit], "corrupt list", detail[hit]),
        unmatched,
    )
