"""Competition metadata read into one canonical table; merging, de-duplication, corrupt files.

Canonical columns (one row per recording, or per labelled segment for Rainforest Connection):

- `filepath`: where the audio is (absolute path or URL); `filename`: the same, relative to the
  audio folder of its source.
- `label`: the primary label; `labels`: every label (a list, primary first, then secondary);
  `other_labels`: labels named in the metadata that have no class code (Cornell / Xeno-Canto
  secondary species outside the set), kept for reference and never in targets.
- `source` (the format name, e.g. `birdclef2024`), `xc_id` (`XC123456` or missing), `author`,
  `rating`, `duration` (seconds, where the metadata or an audio check knows it), `latitude`,
  `longitude`.
- Rainforest boxes `t_min`, `t_max` (seconds), `f_min`, `f_max` (Hz), `songtype`; `positive` is
  False for `train_fp.csv` rows (verified absence of their label), True elsewhere.

Readers are vectorised (pandas string operations; each distinct label-list string is parsed once),
and rows that share a label set share one `labels` list object: never mutate one in place.
Errors name the metadata file and the row, counting the header as row 1 (as a spreadsheet does).

Bad rows: a row with an empty label or file name, a malformed label list, a path outside the data
root, a bad box, a repeat of an earlier row's file, or (with `classes`) a primary label outside the
class list is one bad row of many. Readers given a `bad_rows` list skip such rows and append a
table of them (columns DROPPED, the reason a short kind, the detail naming file and row); without
one, the first bad row is a DataError. A file whose every row is bad, or that lacks a required
column or is not a CSV, is always a DataError. A secondary label outside `classes` is no bad row:
it moves to `other_labels`, like Cornell species without a code.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import math
import multiprocessing
import posixpath
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from itertools import chain

import numpy as np
import pandas as pd

from birdtpu import fs
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
_SUSPECT = r"(?:^|/)\.{1,2}(?:/|$)|//|^/"  # paths that need normalising (or escape the root)
_SIMPLE_LIST = re.compile(r"\[\s*'[^'\\]*'(?:\s*,\s*'[^'\\]*')*\s*,?\s*\]")
_QUOTED = re.compile(r"'([^'\\]*)'")
_XC_IN_NAME = re.compile(r"(?:^|/)XC(\d+)\.[^/]*$", re.IGNORECASE)
_XC_IN_URL = re.compile(r"(?:xeno-canto\.org/|\bXC)(\d+)", re.IGNORECASE)
_XC_ID = re.compile(r"\s*(?:XC)?(\d+)(?:\.0)?\s*", re.IGNORECASE)
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


# ----------------------------------------------------------------------------- small helpers


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


def _normalised(relative: str) -> tuple[str, str | None]:
    """(`relative` normalised, None), or (its kind of problem, the message) where it is absolute,
    climbs out with `..` or names the root itself."""
    norm = posixpath.normpath(relative)
    if relative.startswith("/") or norm == ".." or norm.startswith("../"):
        return "path outside the data root", f"path {relative!r} escapes the data root"
    if norm == ".":
        return "not a file path", f"path {relative!r} names the data root, not a file"
    return norm, None


def _relative(relative: str, where: str) -> str:
    """`relative` normalised; DataError where it is absolute or climbs out with `..`."""
    norm, problem = _normalised(relative)
    if problem:
        raise DataError(f"{where}: {problem}")
    return norm


def _root(root: str) -> str:
    """`root` without a trailing slash; local roots made absolute."""
    return fs.absolute(root)


def safe_join(root: str, relative: str, where: str) -> str:
    """`root/relative`, refusing a path that escapes `root` (absolute or with `..`)."""
    return f"{root.rstrip('/')}/{_relative(relative, where)}"


def _paths(audio_root: str, relative: pd.Series, bad: "_BadRows") -> tuple[pd.Series, pd.Series]:
    """(filepath, normalised relative path) per row; a path outside the root is a bad row."""
    relative = relative.copy()
    for i in np.flatnonzero(relative.str.contains(_SUSPECT, regex=True).to_numpy()):
        norm, problem = _normalised(relative.iat[i])
        if problem:
            bad.add(relative.index[i], norm, problem, relative.iat[i])
        else:
            relative.iat[i] = norm
    return audio_root + "/" + relative, relative


def _where(path: str, index) -> str:
    return f"{path} row {int(index) + 2}"


class _BadRows:
    """The bad rows of one metadata file (see the module docstring): an error each, or collected."""

    def __init__(self, path: str, source: str, collect: list | None):
        self.path, self.source, self.collect = path, source, collect
        self.rows: dict[int, tuple[str, str, str]] = {}  # row label -> (kind, file, detail)

    def add(self, index, kind: str, message: str, file: str = "") -> None:
        """Row `index` (a label of the table as read) is bad; DataError where nothing collects."""
        detail = f"{_where(self.path, index)}: {message}"
        if self.collect is None:
            raise DataError(detail)
        self.rows.setdefault(int(index), (kind, file, detail))

    def good(self, index: pd.Index) -> np.ndarray:
        """True for the rows of `index` not marked bad."""
        return ~np.asarray(index.isin(list(self.rows)))

    def drop(self, out: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
        """`out` (one row per label of `index`) without the bad rows, which are collected."""
        if not self.rows:
            return out
        keep = self.good(index)
        if not keep.any():
            raise DataError(
                f"{self.path}: all {len(index)} rows are unusable "
                f"(first: {self.rows[min(self.rows)][2]})"
            )
        pos = np.flatnonzero(~keep)
        kinds = [self.rows[int(index[i])] for i in pos]
        files = [f or out["filepath"].iat[i] for (_, f, _), i in zip(kinds, pos)]
        self.collect.append(
            pd.DataFrame(
                {
                    "filepath": files,
                    "source": self.source,
                    "reason": [k for k, _, _ in kinds],
                    "detail": [d for _, _, d in kinds],
                },
                columns=DROPPED,
            )
        )
        return out[keep].reset_index(drop=True)


def _read_csv(path: str, required: list[str], text: tuple[str, ...] = ()) -> pd.DataFrame:
    """The CSV at `path` (local or gs://), `text` columns kept as strings; checks `required`."""
    dtype = {c: str for c in text}
    try:
        if not fs.exists(path):
            raise FileNotFoundError(path)
        with fs.open(path, "r") as fh:
            df = pd.read_csv(fh, dtype=dtype)
    except FileNotFoundError:
        raise DataError(f"{path}: metadata file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(
            f"{path}: not a readable CSV ({str(err).strip().splitlines()[0]})"
        ) from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))})"
        )
    return df


def _text(df: pd.DataFrame, column: str, bad: _BadRows) -> pd.Series:
    """A required text column, stripped; an empty cell is a bad row."""
    empty = df[column].isna()
    values = df[column].astype("str").str.strip().where(~empty, "")
    for i in np.flatnonzero((values == "").to_numpy()):
        bad.add(df.index[i], f"empty {column}", f"empty {column}")
    return values


def _optional_text(df: pd.DataFrame, column: str):
    return df[column].astype("str").str.strip() if column in df.columns else np.nan


def _number(df: pd.DataFrame, column: str, bad: _BadRows | None = None, kind: str = ""):
    """A numeric column (NaN where missing); with `bad`, an empty or bad cell is a bad row of `kind`."""
    if column not in df.columns:
        return np.nan
    values = pd.to_numeric(df[column], errors="coerce")
    if bad is not None:
        for i in np.flatnonzero(values.isna().to_numpy()):
            bad.add(df.index[i], kind, f"{column} {df[column].iat[i]!r} is not a number")
    return values.to_numpy(np.float64)


def _no_duplicates(df: pd.DataFrame, keys: list[str], bad: _BadRows, index: pd.Index) -> None:
    """A row (of `df`, labelled by `index`) that repeats an earlier good row's `keys` is a bad row."""
    good = np.flatnonzero(bad.good(index))
    groups = (
        df.iloc[good].groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    )  # in order of appearance
    first = np.unique(groups, return_index=True)[1]  # position in `good` of each group's first row
    for k in np.flatnonzero(np.arange(len(good)) != first[groups]):
        i, j = good[k], good[first[groups[k]]]
        shown = ", ".join(f"{key}={df[key].iat[i]}" for key in keys)
        bad.add(
            index[i],
            "duplicate row",
            f"duplicate of row {int(index[j]) + 2} ({shown})",
            str(df["filepath"].iat[i]) if "filepath" in df.columns else "",
        )


def _combine(primary: pd.Series, cells, parse, bad: _BadRows) -> tuple[np.ndarray, np.ndarray]:
    """Per row: `labels` (primary first, then the parsed cell's labels) and `other_labels`.

    `parse(cell) -> (labels, others)` runs once per distinct cell; a ValueError makes its rows bad.
    """
    pcodes, puniq = pd.factorize(primary)
    puniq = puniq.to_numpy(object)
    if isinstance(cells, pd.Series):
        scodes, suniq = pd.factorize(cells)
    else:
        scodes, suniq = np.full(len(primary), -1), []
    parsed = []
    for k, cell in enumerate(suniq):
        try:
            parsed.append(parse(cell))
        except ValueError as err:
            for i in np.flatnonzero(scodes == k):
                bad.add(primary.index[i], "malformed secondary_labels", str(err))
            parsed.append(([], []))
    parsed.append(([], []))  # code -1: empty cell
    width = len(suniq) + 1
    ccodes, cuniq = pd.factorize(pcodes.astype(np.int64) * width + scodes + 1)
    labels, others = np.empty(len(cuniq), object), np.empty(len(cuniq), object)
    for j, key in enumerate(cuniq):
        first = puniq[key // width]
        secondary, other = parsed[key % width - 1]
        labels[j] = [first] + [s for s in dict.fromkeys(secondary) if s != first]
        others[j] = other or _EMPTY
    return labels[ccodes], others[ccodes]


def _objects(items) -> np.ndarray:
    """A 1-d object array of `items` (numpy would make equal-length lists a 2-d array)."""
    items = list(items)
    out = np.empty(len(items), object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _shared(values: pd.Series) -> np.ndarray:
    """One-label lists per row, one list object per distinct value."""
    codes, uniq = pd.factorize(values)
    return _objects([u] for u in uniq)[codes]


def _search(pattern: re.Pattern, values, fullmatch: bool = False) -> np.ndarray:
    """The first group of `pattern` in each string of `values` (None where absent or not a string)."""
    find = pattern.fullmatch if fullmatch else pattern.search
    return np.array(
        [m.group(1) if isinstance(v, str) and (m := find(v)) else None for v in values], object
    )


def _xc_ids(relative: pd.Series, url=None, explicit=None) -> pd.Series:
    """`XC<digits>` from an explicit id column, else the file name, else the URL; NaN if none."""

    def found(pattern, column, fullmatch=False):
        return pd.Series(_search(pattern, column.to_numpy(), fullmatch), index=relative.index)

    digits = found(_XC_IN_NAME, relative)
    if isinstance(url, pd.Series) and digits.isna().any():
        digits = digits.fillna(found(_XC_IN_URL, url.where(digits.isna())))
    if isinstance(explicit, pd.Series):
        digits = found(_XC_ID, explicit, fullmatch=True).fillna(digits)
    return "XC" + digits.astype("str")


def _canonical(n: int, **columns) -> pd.DataFrame:
    """A canonical frame of `n` rows from `columns` (arrays or scalars), defaults elsewhere."""
    data = {}
    for name in CANONICAL:
        value = columns.get(name, _DEFAULTS.get(name))
        if name == "other_labels" and value is None:
            value = np.empty(n, object)
            value.fill(_EMPTY)
        data[name] = value.to_numpy() if isinstance(value, pd.Series) else value
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _meta_path(root: str, metadata: str) -> str:
    return safe_join(_root(root), metadata, root)


def _audio_root(root: str, audio_dir: str) -> str:
    return safe_join(_root(root), audio_dir, root) if audio_dir else _root(root)


# ----------------------------------------------------------------------------- readers


def read_birdclef(
    root: str,
    metadata: str = "train_metadata.csv",
    audio_dir: str = "train_audio",
    source: str = "birdclef",
    label_dir: bool = False,
    classes: list[str] | None = None,
    bad_rows: list | None = None,
) -> pd.DataFrame:
    """BirdCLEF 2021-2024 `train_metadata.csv` as a canonical table.

    Audio is `<root>/<audio_dir>/<filename>`, or `<root>/<audio_dir>/<primary_label>/<filename>`
    with `label_dir` (2021: `train_short_audio`). `classes`, `bad_rows`: see the module docstring.
    """
    path = _meta_path(root, metadata)
    df = _read_csv(
        path,
        ["primary_label", "filename"],
        text=("primary_label", "secondary_labels", "filename", "url", "author"),
    )
    bad = _BadRows(path, source, bad_rows)
    primary = _text(df, "primary_label", bad)
    relative = _text(df, "filename", bad)
    if label_dir:
        relative = primary + "/" + relative
    filepath, relative = _paths(_audio_root(root, audio_dir), relative, bad)
    labels, others = _combine(
        primary, df.get("secondary_labels"), lambda c: (_parse_list(c), []), bad
    )
    out = _canonical(
        len(df),
        filepath=filepath,
        filename=relative,
        label=primary,
        labels=labels,
        other_labels=others,
        source=source,
        xc_id=_xc_ids(relative, df.get("url")),
        author=_optional_text(df, "author"),
        rating=_number(df, "rating"),
        latitude=_number(df, "latitude"),
        longitude=_number(df, "longitude"),
    )
    _no_duplicates(out, ["filepath"], bad, df.index)
    return _finish(out, classes, bad, df.index)


def _finish(
    out: pd.DataFrame, classes: list[str] | None, bad: _BadRows, index: pd.Index
) -> pd.DataFrame:
    """`out` with labels checked against `classes` (see the module docstring), bad rows dropped."""
    if classes is not None:
        out = _known_labels(out, classes, bad, index)
    return bad.drop(out, index)


def read_cornell(
    root: str,
    metadata: str = "train.csv",
    audio_dir: str = "train_audio",
    source: str = "birdclef2020",
    part: str | None = None,
    classes: list[str] | None = None,
    bad_rows: list | None = None,
) -> pd.DataFrame:
    """BirdCLEF 2020 (Cornell birdsong-recognition) `train.csv`; audio `<audio_dir>/<ebird_code>/<filename>`.

    Secondary labels there are `"Genus species_Common Name"`; they become eBird codes where the
    file names that species (its `primary_label` or `sci_name` + `species`), else `other_labels`.
    `part` ("A-M") keeps the rows whose eBird code starts with a letter in that range (and those
    without a code, to report them). `classes`, `bad_rows`: see the module docstring.
    """
    path = _meta_path(root, metadata)
    df = _read_csv(
        path,
        ["ebird_code", "filename"],
        text=(
            "ebird_code",
            "filename",
            "secondary_labels",
            "primary_label",
            "sci_name",
            "species",
            "xc_id",
            "url",
            "author",
        ),
    )
    every = df["ebird_code"].fillna("").astype(str).str.strip()
    names = _species_names(df, every)  # from the whole file, whichever part is read
    known = set(every) - {""}
    if part is not None:
        df = df[(_in_letter_range(every, part, path) | (every == "")).to_numpy()]
    bad = _BadRows(path, source, bad_rows)
    code = _text(df, "ebird_code", bad)
    filepath, relative = _paths(
        _audio_root(root, audio_dir), code + "/" + _text(df, "filename", bad), bad
    )

    def parse(cell):
        listed = _parse_list(cell)
        mapped = [names.get(s, s) for s in listed if s in names or s in known]
        return mapped, [s for s in listed if s not in names and s not in known]

    labels, others = _combine(code, df.get("secondary_labels"), parse, bad)
    out = _canonical(
        len(df),
        filepath=filepath,
        filename=relative,
        label=code,
        labels=labels,
        other_labels=others,
        source=source,
        xc_id=_xc_ids(relative, df.get("url"), df.get("xc_id")),
        author=_optional_text(df, "author"),
        rating=_number(df, "rating"),
        duration=_number(df, "duration"),
        latitude=_number(df, "latitude"),
        longitude=_number(df, "longitude"),
    )
    _no_duplicates(out, ["filepath"], bad, df.index)
    return _finish(out, classes, bad, df.index)


def _species_names(df: pd.DataFrame, code: pd.Series) -> dict[str, str]:
    """Cornell species names ("Genus species_Common Name") -> eBird code, from the file itself."""
    names: dict[str, str] = {}
    columns = []
    if "sci_name" in df.columns and "species" in df.columns:
        columns.append(df["sci_name"] + "_" + df["species"])
    if "primary_label" in df.columns:
        columns.append(df["primary_label"])
    for name in columns:
        pairs = pd.DataFrame({"name": name, "code": code}).dropna().drop_duplicates()
        pairs = pairs[pairs["code"] != ""]
        names.update(zip(pairs["name"], pairs["code"]))
    return names


def _in_letter_range(code: pd.Series, part: str, path: str) -> pd.Series:
    match = re.fullmatch(r"([A-Za-z])-([A-Za-z])", part)
    if not match:
        raise DataError(f"{path}: part {part!r} is not a letter range like A-M")
    first = code.str[0].str.upper()
    return (first >= match.group(1).upper()) & (first <= match.group(2).upper())


def read_xc_extended(
    root: str,
    part: str = "A-M",
    metadata: str = "train_extended.csv",
    source: str | None = None,
    classes: list[str] | None = None,
    bad_rows: list | None = None,
) -> pd.DataFrame:
    """Xeno-Canto extended A-M or N-Z (`train_extended.csv`, Cornell columns; audio `<part>/<ebird_code>/`).

    Both datasets ship the full `train_extended.csv`; the rows of the other part are left out.
    """
    return read_cornell(
        root,
        metadata,
        audio_dir=part,
        source=source or f"xc-{part.lower()}",
        part=part,
        classes=classes,
        bad_rows=bad_rows,
    )


def read_fat2019(
    root: str,
    subset: str = "curated",
    source: str | None = None,
    classes: list[str] | None = None,
    bad_rows: list | None = None,
) -> pd.DataFrame:
    """Freesound Audio Tagging 2019 `train_curated.csv` / `train_noisy.csv` (`fname`, comma-joined `labels`).

    Multi-label: `labels` holds every label, `label` the first. Audio is `train_<subset>/<fname>`.
    """
    if subset not in ("curated", "noisy"):
        raise DataError(f"fat2019 subset {subset!r}: expected curated or noisy")
    path = _meta_path(root, f"train_{subset}.csv")
    df = _read_csv(path, ["fname", "labels"], text=("fname", "labels"))
    bad = _BadRows(path, source or f"fat2019-{subset}", bad_rows)
    cells = _text(df, "labels", bad)
    codes, uniq = pd.factorize(cells)
    lists = _objects(
        list(dict.fromkeys(s for s in (p.strip() for p in cell.split(",")) if s)) for cell in uniq
    )
    for k, labels in enumerate(lists):
        if not labels:
            for i in np.flatnonzero(codes == k):
                bad.add(df.index[i], "empty labels", f"no label in {uniq[k]!r}")
            labels.append("")
    firsts = np.array([labels[0] for labels in lists], dtype=object)
    filepath, relative = _paths(_audio_root(root, f"train_{subset}"), _text(df, "fname", bad), bad)
    out = _canonical(
        len(df),
        filepath=filepath,
        filename=relative,
        label=firsts[codes],
        labels=lists[codes],
        source=bad.source,
    )
    _no_duplicates(out, ["filepath"], bad, df.index)
    return _finish(out, classes, bad, df.index)


def read_rainforest(
    root: str,
    subset: str = "tp",
    audio_dir: str = "train",
    extension: str = ".flac",
    source: str | None = None,
    classes: list[str] | None = None,
    bad_rows: list | None = None,
) -> pd.DataFrame:
    """Rainforest Connection `train_tp.csv` / `train_fp.csv`: one row per labelled box.

    `label` is the species id (as text); `positive` is False for fp rows (the species verified
    absent in that box). A recording with several boxes, or in both files, shares `filepath`.
    """
    if subset not in ("tp", "fp"):
        raise DataError(f"rainforest subset {subset!r}: expected tp or fp")
    path = _meta_path(root, f"train_{subset}.csv")
    keys = ["recording_id", "species_id", "songtype_id", *BOXES]
    df = _read_csv(path, keys, text=("recording_id", "species_id"))
    bad = _BadRows(path, source or f"rfcx-{subset}", bad_rows)
    species = _text(df, "species_id", bad)
    box = {c: _number(df, c, bad, "bad box") for c in BOXES}
    empty = (box["t_max"] <= box["t_min"]) | (box["f_max"] <= box["f_min"]) | (box["t_min"] < 0)
    for i in np.flatnonzero(empty):
        bad.add(
            df.index[i],
            "bad box",
            f"empty or negative box (t {box['t_min'][i]}-{box['t_max'][i]} s, "
            f"f {box['f_min'][i]}-{box['f_max'][i]} Hz)",
        )
    filepath, relative = _paths(
        _audio_root(root, audio_dir), _text(df, "recording_id", bad) + extension, bad
    )
    out = _canonical(
        len(df),
        filepath=filepath,
        filename=relative,
        label=species,
        labels=_shared(species),
        source=bad.source,
        songtype=_number(df, "songtype_id"),
        positive=subset == "tp",
        **box,
    )
    _no_duplicates(
        out.assign(songtype_id=df["songtype_id"].to_numpy()),
        ["filepath", "label", "songtype_id", *BOXES],
        bad,
        df.index,
    )
    return _finish(out, classes, bad, df.index)


# format name -> (reader, its keyword arguments)
FORMATS: dict[str, tuple] = {
    "birdclef2021": (read_birdclef, {"audio_dir": "train_short_audio", "label_dir": True}),
    "birdclef2022": (read_birdclef, {}),
    "birdclef2023": (read_birdclef, {}),
    "birdclef2024": (read_birdclef, {}),
    "birdclef": (read_birdclef, {}),
    "birdclef-root": (read_birdclef, {"audio_dir": ""}),
    "birdclef2020": (read_cornell, {}),
    "xc-am": (read_xc_extended, {"part": "A-M"}),
    "xc-nz": (read_xc_extended, {"part": "N-Z"}),
    "fat2019-curated": (read_fat2019, {"subset": "curated"}),
    "fat2019-noisy": (read_fat2019, {"subset": "noisy"}),
    "rfcx-tp": (read_rainforest, {"subset": "tp"}),
    "rfcx-fp": (read_rainforest, {"subset": "fp"}),
}


def read_source(
    fmt: str, root: str, classes: list[str] | None = None, bad_rows: list | None = None
) -> pd.DataFrame:
    """The canonical table of one dataset in format `fmt` (a key of FORMATS) under `root`.

    `classes`, `bad_rows`: see the module docstring.
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown metadata format {fmt!r} (one of {', '.join(FORMATS)})")
    reader, kwargs = FORMATS[fmt]
    return reader(root, source=fmt, classes=classes, bad_rows=bad_rows, **kwargs)


def read_class_list(path: str) -> list[str]:
    """Class names from a text file (one a line), a JSON list, or the header of a CSV such as
    `sample_submission.csv` (its `row_id` column left out)."""
    if not fs.exists(path):
        raise DataError(f"{path}: class list not found")
    text = fs.read_text(path)
    if path.endswith(".json"):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err})") from None
    elif path.endswith(".csv"):
        names = [
            n.strip()
            for n in (text.splitlines() or [""])[0].split(",")
            if n.strip() not in ("", "row_id")
        ]
    else:
        names = [
            n for n in (line.strip() for line in text.splitlines()) if n and not n.startswith("#")
        ]
    if not isinstance(names, list) or not names:
        raise DataError(
            f"{path}: no class names (expected one a line, a JSON list or a CSV header)"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: class {repeated[0]!r} is listed twice")
    return [str(n) for n in names]


def _known_labels(
    df: pd.DataFrame, classes: list[str], bad: _BadRows, index: pd.Index
) -> pd.DataFrame:
    """Rows whose primary label is outside `classes` marked bad; other labels outside it moved to
    `other_labels` (rows of `df` are labelled by `index`)."""
    known = set(classes)
    if not set(chain.from_iterable(df["labels"])) - known:
        return df
    labels, others = df["labels"].to_numpy().copy(), df["other_labels"].to_numpy().copy()
    for i in np.flatnonzero(bad.good(index)):
        row = labels[i]
        if row[0] not in known:
            bad.add(
                index[i],
                "unknown label",
                f"primary label {row[0]!r} is not one of the {len(known)} classes",
                df["filepath"].iat[i],
            )
        elif any(x not in known for x in row):
            labels[i] = [x for x in row if x in known]
            others[i] = list(others[i]) + [x for x in row if x not in known]
    return df.assign(labels=labels, other_labels=others)


# ----------------------------------------------------------------------------- merging and cleaning


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


def _probe(path: str) -> tuple[str | None, float]:
    from birdtpu.data.audio import audio_info, check_audio

    reason = check_audio(path)
    return (reason, math.nan) if reason else (None, audio_info(path)[1])


def probe_audio(
    paths: list[str], workers: int = 1, progress=None
) -> list[tuple[str | None, float]]:
    """(reason the file is unusable or None, duration in seconds) per path; `workers` processes.

    `progress` (a birdtpu.progress.Progress) advances by one file, with its seconds, as each is probed.
    """

    def counted(results):
        for reason, seconds in results:
            if progress is not None:
                progress.advance(1, 0.0 if reason else seconds)
            yield reason, seconds

    if workers <= 1 or len(paths) < 2:
        return list(counted(map(_probe, paths)))
    ctx = multiprocessing.get_context("spawn")  # TensorFlow, if loaded, is not fork-safe
    with ProcessPoolExecutor(min(workers, len(paths)), mp_context=ctx) as pool:
        return list(counted(pool.map(_probe, paths, chunksize=max(1, len(paths) // (workers * 8)))))


def drop_unusable(
    df: pd.DataFrame, workers: int = 1, progress=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decode every recording once; drop unreadable, empty, all-zero or NaN ones, fill `duration`.

    Returns (kept, dropped with each file's reason). `progress`: see `probe_audio`.
    """
    paths = df["filepath"].unique()
    results = probe_audio(list(paths), workers, progress)
    reason = df["filepath"].map(dict(zip(paths, (r for r, _ in results))))
    seconds = df["filepath"].map(dict(zip(paths, (s for _, s in results))))
    df = df.assign(duration=df["duration"].fillna(seconds))
    bad = reason.notna().to_numpy()
    if not bad.any():
        return df, no_drops()
    return df[~bad].reset_index(drop=True), dropped_rows(df[bad], "unusable audio", reason[bad])


# ----------------------------------------------------------------------------- labels and targets


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


# ----------------------------------------------------------------------------- table files


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
