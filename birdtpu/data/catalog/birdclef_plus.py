"""Readers of BirdCLEF+ 2025 and 2026: `train.csv`, `taxonomy.csv`, soundscape labels and folders.

Layouts, and where each was confirmed (public code and notes read in December 2026; none of it
is the competitions' own data page):

- `train.csv` 2025 (confirmed: a notebook's `train.head()` table and the Hugging Face card of
  `christopher/birdclef-2025`): primary_label, secondary_labels, type, filename, collection,
  rating, url, latitude, longitude, scientific_name, common_name, author, license. Labels are
  eBird codes (birds) or iNaturalist taxon ids (others, e.g. `1139490`); `filename` is
  `<label>/<file>.ogg` under `train_audio/`; `secondary_labels` is often `['']`.
- `train.csv` 2026 (confirmed: a column list printed in a 2026 notebook's notes, and a test
  fixture in the 2026 layout; `train_metadata.csv` does not exist in 2026, notebooks that read
  it fail): primary_label, secondary_labels, type, latitude, longitude, scientific_name,
  common_name, class_name, inat_taxon_id, author, license, rating, url, filename, collection.
- `taxonomy.csv` (confirmed for 2026 by the same fixture; 2025 assumed the same):
  primary_label, inat_taxon_id, scientific_name, common_name, class_name (Aves, Amphibia,
  Insecta, Mammalia; Reptilia in 2026). Its row order is the submission's column order.
- `train_soundscapes_labels.csv` 2026 (confirmed by several notebooks): filename, start, end,
  primary_label; start and end are `HH:MM:SS` (`00:00:05`), one row per 5-s window with its
  labels joined by `;`; the published file holds every row twice (exact repeats). Windows
  without a row are taken as empty: an assumption (66 files x 12 windows, 739 distinct rows).
- `train_soundscapes/` (confirmed): 1-min 32 kHz ogg files; row ids `<stem>_<end second>`
  (`_5` ... `_60`), as in `sample_submission.csv` (row_id, then one column per class).

The canonical table has no taxon column, so `train.csv` rows carry no class_name; join with
`read_taxonomy` on `label` where it is needed.
"""

from __future__ import annotations

import math
import os
from itertools import chain

import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog.birdclef import read_birdclef
from birdtpu.data.catalog.columns import _objects
from birdtpu.data.catalog.merge import dropped_rows, skip_summary
from birdtpu.data.catalog.rows import _BadRows, _paths, _read_csv, _text, _where
from birdtpu.errors import DataError
from birdtpu.rowid import row_ids

TAXONOMY, SOUNDSCAPE_LABELS = "taxonomy.csv", "train_soundscapes_labels.csv"
SOUNDSCAPE_DIR = "train_soundscapes"
AUDIO_EXTENSIONS = (".ogg", ".flac", ".wav", ".mp3")
_SLACK = 0.01  # seconds of header length that are no window of their own
WINDOW_COLUMNS = ["filepath", "filename", "row_id", "start", "end", "labels"]


def read_birdclef_plus(
    root: str,
    metadata: str = "train.csv",
    audio_dir: str = "train_audio",
    source: str = "birdclef26",
    classes: list[str] | None = None,
    bad_rows: list | None = None,
) -> pd.DataFrame:
    """BirdCLEF+ 2025 / 2026 `train.csv` as a canonical table (audio `<audio_dir>/<filename>`).

    The BirdCLEF columns it reads have the same names in both years; `classes`, `bad_rows`: see
    `birdtpu.data.catalog`.
    """
    return read_birdclef(root, metadata, audio_dir, source, classes=classes, bad_rows=bad_rows)


def read_taxonomy(path: str) -> pd.DataFrame:
    """`taxonomy.csv` as columns primary_label, scientific_name, common_name, taxon (its
    class_name), inat_taxon_id (nullable integer), in file order; any bad row is a DataError."""
    df = _read_csv(
        path,
        ["primary_label", "class_name"],
        text=("primary_label", "class_name", "scientific_name", "common_name", "inat_taxon_id"),
    )
    bad = _BadRows(path, "taxonomy", None)
    label, taxon = _text(df, "primary_label", bad), _text(df, "class_name", bad)
    repeated = label.duplicated()
    if repeated.any():
        i = int(np.argmax(repeated.to_numpy()))
        first = int(np.argmax((label == label.iat[i]).to_numpy()))
        raise DataError(
            f"{_where(path, i)}: primary_label {label.iat[i]!r} repeats row {first + 2}"
        )
    ids = pd.Series(pd.NA, index=df.index, dtype="Int64")
    if "inat_taxon_id" in df.columns:
        raw = df["inat_taxon_id"].str.strip()
        ids = pd.to_numeric(raw, errors="coerce")
        wrong = ids.isna() & raw.notna() & (raw != "")
        if wrong.any():
            i = int(np.argmax(wrong.to_numpy()))
            raise DataError(f"{_where(path, i)}: inat_taxon_id {raw.iat[i]!r} is not a number")
        ids = ids.astype("Int64")

    def optional(column):
        return df[column].str.strip() if column in df.columns else pd.Series(np.nan, df.index)

    return pd.DataFrame(
        {
            "primary_label": label,
            "scientific_name": optional("scientific_name"),
            "common_name": optional("common_name"),
            "taxon": taxon,
            "inat_taxon_id": ids,
        }
    ).reset_index(drop=True)


def taxon_classes(taxonomy: pd.DataFrame, taxon: str) -> list[str]:
    """The class codes of one taxon (e.g. "Amphibia") in taxonomy order; DataError naming the
    taxa present where `taxon` is not one of them."""
    rows = taxonomy["taxon"] == taxon
    if not rows.any():
        present = ", ".join(sorted(taxonomy["taxon"].unique()))
        raise DataError(f"taxon {taxon!r} is not in the taxonomy (it has {present})")
    return taxonomy.loc[rows, "primary_label"].tolist()


def _seconds(value: str) -> float:
    """`HH:MM:SS`, `MM:SS` or plain seconds as seconds; ValueError otherwise."""
    parts = value.strip().split(":")
    if not 1 <= len(parts) <= 3:
        raise ValueError(value)
    out = 0.0
    for part in parts:
        number = float(part)
        if not math.isfinite(number) or number < 0:
            raise ValueError(value)
        out = out * 60 + number
    return out


def _times(df: pd.DataFrame, column: str, bad: _BadRows) -> np.ndarray:
    values = df[column].fillna("").astype(str)
    parsed = {}
    for v in values.unique():
        try:
            parsed[v] = _seconds(v)
        except ValueError:
            parsed[v] = math.nan
    out = values.map(parsed).to_numpy(np.float64)
    for i in np.flatnonzero(np.isnan(out)):
        bad.add(df.index[i], f"bad {column}", f"{column} {values.iat[i]!r} is not HH:MM:SS")
    return out


def read_soundscape_labels(
    path: str,
    audio_dir: str,
    classes: list[str],
    window: float = 5.0,
    bad_rows: list | None = None,
) -> pd.DataFrame:
    """The 2026 `train_soundscapes_labels.csv` as one row per (soundscape, window).

    Columns WINDOW_COLUMNS: `filepath` (`<audio_dir>/<filename>`), `filename`, `row_id`
    (`<stem>_<end second>`), `start`, `end` (seconds, on the `window` grid; a last window ends
    where its rows end, `x_12` for a 12-s file), `labels` (a list in `classes` order;
    `birdtpu.data.catalog.targets` makes it multi-hot). A row spanning
    several grid windows labels each; rows of one window merge (the union of their labels), so
    the file's exact repeats are harmless. Bad rows (empty filename or label, a time that is
    not HH:MM:SS, end <= start, a label outside `classes`, a file missing from `audio_dir`, a
    path outside it) are DataErrors naming the file and row, or skipped and collected in
    `bad_rows` (see `birdtpu.data.catalog`).
    """
    if window <= 0:
        raise DataError(f"{path}: window {window} must be positive")
    df = _read_csv(
        path, ["filename", "start", "end", "primary_label"], text=("filename", "primary_label")
    )
    if df.empty:
        raise DataError(f"{path}: no rows")
    bad = _BadRows(path, "soundscape-labels", bad_rows)
    relative = _text(df, "filename", bad)
    filepath, relative = _paths(fs.absolute(audio_dir).rstrip("/"), relative, bad)
    start, end = _times(df, "start", bad), _times(df, "end", bad)
    for i in np.flatnonzero(end <= start):
        bad.add(df.index[i], "bad window", f"end {end[i]:g} s is not after start {start[i]:g} s")
    known = {c: k for k, c in enumerate(classes)}
    cells = _text(df, "primary_label", bad)
    codes, uniq = pd.factorize(cells)
    parsed = [[s for s in (p.strip() for p in u.split(";")) if s] for u in uniq]
    for k, labels in enumerate(parsed):
        unknown = [s for s in labels if s not in known]
        if unknown or not labels:
            message = (
                f"label {unknown[0]!r} is not one of the {len(known)} classes"
                if unknown
                else f"no label in {uniq[k]!r}"
            )
            for i in np.flatnonzero(codes == k):
                bad.add(df.index[i], "unknown label" if unknown else "empty primary_label", message)
    exists = {p: fs.exists(p) for p in filepath.unique()}
    for i in np.flatnonzero(~filepath.map(exists).to_numpy(bool)):
        bad.add(df.index[i], "missing file", f"{filepath.iat[i]} does not exist")
    rows = bad.drop(
        pd.DataFrame(
            {"filepath": filepath, "filename": relative, "start": start, "end": end, "k": codes}
        ),
        df.index,
    )
    first = np.floor(rows["start"].to_numpy() / window + 1e-6).astype(np.int64)
    last = np.ceil(rows["end"].to_numpy() / window - 1e-6).astype(np.int64)  # exclusive
    spans = np.maximum(last - first, 1)
    grid = rows.loc[rows.index.repeat(spans)].assign(
        w=np.concatenate([np.arange(a, a + n) for a, n in zip(first, spans)])
    )
    out = []
    for (name, w), group in grid.groupby(["filename", "w"], sort=True):
        labels = set(chain.from_iterable(parsed[k] for k in group["k"].unique()))
        stem = os.path.splitext(os.path.basename(name))[0]
        end_s = min((w + 1) * window, group["end"].max())  # a file's short last window
        out.append(
            (
                group["filepath"].iat[0],
                name,
                row_ids(stem, [end_s])[0],
                w * window,
                end_s,
                sorted(labels, key=known.get),
            )
        )
    table = pd.DataFrame(out, columns=WINDOW_COLUMNS)
    table["labels"] = _objects(table["labels"])
    return table


def list_unlabelled_soundscapes(
    folder: str,
    window: float = 5.0,
    skipped: list | None = None,
    log=None,
    decoder: str = "auto",
) -> pd.DataFrame:
    """One row per window of every ogg/flac/wav/mp3 file in `folder` (not its subfolders): columns
    filepath, filename, row_id (`<stem>_<end second>`), start, end (seconds).

    Durations come from the headers (`birdtpu.data.audio.audio_info`); the last window of a file
    ends at its length rounded up to a whole second where that is short of the grid (`x_13` for
    12.3 s), as the synthetic set writes it; a file at most 10 ms past the grid adds no window.
    Unreadable or empty files are skipped: a table of them (columns DROPPED) is appended to
    `skipped`, and `log` gets one line with the count and the first three. DataError where the
    folder holds no audio file, or none readable.
    """
    from birdtpu.data.audio import AudioError, audio_info

    if window <= 0:
        raise DataError(f"{folder}: window {window} must be positive")
    root = fs.absolute(folder).rstrip("/")
    names = sorted(n for n in fs.listdir(root) if n.lower().endswith(AUDIO_EXTENSIONS))
    if not names:
        raise DataError(
            f"{folder}: no soundscape audio ({', '.join(AUDIO_EXTENSIONS)}) in this folder"
        )
    rows, failed = [], []
    for name in names:
        path = f"{root}/{name}"
        try:
            seconds = audio_info(path, decoder)[1]
        except AudioError as err:
            failed.append((path, err.reason))
            continue
        if seconds <= _SLACK:
            failed.append((path, f"empty ({seconds:g} s)"))
            continue
        last = float(math.ceil(seconds - _SLACK))  # a header a few ms long starts no window
        n = max(1, math.ceil((seconds - _SLACK) / window))
        ends = [min((w + 1) * window, last) for w in range(n)]
        stem = os.path.splitext(name)[0]
        rows += [
            (path, name, rid, w * window, e)
            for w, (rid, e) in enumerate(zip(row_ids(stem, ends), ends))
        ]
    if failed:
        lost = pd.DataFrame({"filepath": [p for p, _ in failed], "source": "soundscapes"})
        reasons = [r for _, r in failed]
        if skipped is not None:
            skipped.append(dropped_rows(lost, "unusable audio", reasons))
        if log is not None:
            first = ", ".join(f"{os.path.basename(p)} ({r})" for p, r in failed[:3])
            log(
                skip_summary(f"soundscapes in {folder}", reasons, len(names), "files")
                + f"; first: {first}"
            )
    if not rows:
        raise DataError(f"{folder}: none of the {len(names)} soundscape files is readable")
    return pd.DataFrame(rows, columns=["filepath", "filename", "row_id", "start", "end"])
