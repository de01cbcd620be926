"""Readers of BirdCLEF 2020-2024 metadata: `train_metadata.csv`, Cornell `train.csv`, Xeno-Canto extended."""

from __future__ import annotations

import re

import pandas as pd

from birdtpu.data.catalog.columns import _parse_list
from birdtpu.data.catalog.rows import (
    _audio_root,
    _BadRows,
    _canonical,
    _combine,
    _finish,
    _meta_path,
    _no_duplicates,
    _number,
    _optional_text,
    _paths,
    _read_csv,
    _text,
    _xc_ids,
)
from birdtpu.errors import DataError


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
    audio_dir: str | None = None,
) -> pd.DataFrame:
    """Xeno-Canto extended A-M or N-Z (`train_extended.csv`, Cornell columns; audio
    `<part>/<ebird_code>/`, or `<audio_dir>/<ebird_code>/`).

    Both datasets ship the full `train_extended.csv`; the rows of the other part are left out.
    """
    return read_cornell(
        root,
        metadata,
        audio_dir=part if audio_dir is None else audio_dir,
        source=source or f"xc-{part.lower()}",
        part=part,
        classes=classes,
        bad_rows=bad_rows,
    )
