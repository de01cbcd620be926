"""Readers of Freesound Audio Tagging 2019 and Rainforest Connection (labelled boxes) metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd

from birdtpu.data.catalog.columns import BOXES, _objects
from birdtpu.data.catalog.rows import (
    _audio_root,
    _BadRows,
    _canonical,
    _finish,
    _meta_path,
    _no_duplicates,
    _number,
    _paths,
    _read_csv,
    _shared,
    _text,
)
from birdtpu.errors import DataError


def read_fat2019(
    root: str,
    subset: str = "curated",
    source: str | None = None,
    classes: list[str] | None = None,
    bad_rows: list | None = None,
    audio_dir: str | None = None,
) -> pd.DataFrame:
    """Freesound Audio Tagging 2019 `train_curated.csv` / `train_noisy.csv` (`fname`, comma-joined `labels`).

    Multi-label: `labels` holds every label, `label` the first. Audio is `train_<subset>/<fname>`
    (or `<audio_dir>/<fname>`).
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
    filepath, relative = _paths(
        _audio_root(root, f"train_{subset}" if audio_dir is None else audio_dir),
        _text(df, "fname", bad),
        bad,
    )
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
