"""Reading one metadata CSV: paths checked against the root, bad rows collected, column helpers."""

from __future__ import annotations

import posixpath
import re
from itertools import chain

import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog.columns import _DEFAULTS, _EMPTY, CANONICAL, DROPPED, _objects
from birdtpu.errors import DataError

_SUSPECT = r"(?:^|/)\.{1,2}(?:/|$)|//|^/"  # paths that need normalising (or escape the root)
_XC_IN_NAME = re.compile(r"(?:^|/)XC(\d+)\.[^/]*$", re.IGNORECASE)
_XC_IN_URL = re.compile(r"(?:xeno-canto\.org/|\bXC)(\d+)", re.IGNORECASE)
_XC_ID = re.compile(r"\s*(?:XC)?(\d+)(?:\.0)?\s*", re.IGNORECASE)


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
    """The audio folder: `audio_dir` under `root` ("" or "." for `root`), or an absolute one."""
    if fs.is_remote(audio_dir) or audio_dir.startswith("/"):
        return fs.absolute(audio_dir)
    if not audio_dir or posixpath.normpath(audio_dir) == ".":
        return _root(root)
    return safe_join(_root(root), audio_dir, root)


def _finish(
    out: pd.DataFrame, classes: list[str] | None, bad: _BadRows, index: pd.Index
) -> pd.DataFrame:
    """`out` with labels checked against `classes` (see the module docstring), bad rows dropped."""
    if classes is not None:
        out = _known_labels(out, classes, bad, index)
    return bad.drop(out, index)


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
