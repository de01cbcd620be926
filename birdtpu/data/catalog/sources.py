"""The source formats by name (`FORMATS`, `read_source`) and class lists of fine-tuning sets."""

from __future__ import annotations

import json

import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog.birdclef import read_birdclef, read_cornell, read_xc_extended
from birdtpu.data.catalog.birdclef_plus import read_birdclef_plus
from birdtpu.data.catalog.tagging import read_fat2019, read_rainforest
from birdtpu.errors import DataError

# format name -> (reader, its keyword arguments)
FORMATS: dict[str, tuple] = {
    "birdclef2021": (read_birdclef, {"audio_dir": "train_short_audio", "label_dir": True}),
    "birdclef2022": (read_birdclef, {}),
    "birdclef2023": (read_birdclef, {}),
    "birdclef2024": (read_birdclef, {}),
    "birdclef25": (read_birdclef_plus, {}),
    "birdclef26": (read_birdclef_plus, {}),
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
    fmt: str,
    root: str,
    classes: list[str] | None = None,
    bad_rows: list | None = None,
    audio_dir: str | None = None,
) -> pd.DataFrame:
    """The canonical table of one dataset in format `fmt` (a key of FORMATS) under `root`.

    `audio_dir` replaces the format's audio folder (relative to `root`, or absolute; "." is
    `root`); the layouts are in `birdtpu.data.layouts`. `classes`, `bad_rows`: see the module
    docstring.
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown metadata format {fmt!r} (one of {', '.join(FORMATS)})")
    reader, kwargs = FORMATS[fmt]
    if audio_dir is not None:
        kwargs = {**kwargs, "audio_dir": audio_dir}
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
