"""What each catalog source format expects under its DIR: the metadata file, its columns, where the
audio is. Plain text for `birdtpu catalog --help` and docs/catalog-sources.md (no pandas import);
the readers are `birdtpu.data.catalog.FORMATS`, with the same names in the same order."""

from __future__ import annotations

import textwrap

_BIRDCLEF = (
    "train_metadata.csv",
    "primary_label, filename; optional secondary_labels, author, url, rating, latitude, longitude",
)
_PLUS = "train.csv"  # BirdCLEF+ 2025 and 2026: the BirdCLEF columns under another name
_CORNELL = (
    "ebird_code, filename; optional secondary_labels, primary_label, sci_name, species, xc_id, "
    "url, author, rating, duration, latitude, longitude"
)
_FAT = "fname, labels (comma-joined)"
_RFCX = "recording_id, species_id, songtype_id, t_min, t_max, f_min, f_max"

# format -> (metadata file under DIR, its columns, default audio folder AUDIO under DIR ("" is
# DIR itself; --audio-dir replaces it), the path of a row's audio under AUDIO)
LAYOUTS: dict[str, tuple[str, str, str, str]] = {
    "birdclef2021": (*_BIRDCLEF, "train_short_audio", "<primary_label>/<filename>"),
    "birdclef2022": (*_BIRDCLEF, "train_audio", "<filename> (e.g. label/XC123.ogg)"),
    "birdclef2023": (*_BIRDCLEF, "train_audio", "<filename>"),
    "birdclef2024": (*_BIRDCLEF, "train_audio", "<filename>"),
    "birdclef25": (_PLUS, _BIRDCLEF[1], "train_audio", "<filename> (e.g. 1139490/CSA36385.ogg)"),
    "birdclef26": (_PLUS, _BIRDCLEF[1], "train_audio", "<filename> (e.g. 22961/iNat123.ogg)"),
    "birdclef": (*_BIRDCLEF, "train_audio", "<filename>"),
    "birdclef-root": (*_BIRDCLEF, "", "<filename> (e.g. <label>/<file>.wav)"),
    "birdclef2020": ("train.csv", _CORNELL, "train_audio", "<ebird_code>/<filename>"),
    "xc-am": ("train_extended.csv", _CORNELL, "A-M", "<ebird_code>/<filename>"),
    "xc-nz": ("train_extended.csv", _CORNELL, "N-Z", "<ebird_code>/<filename>"),
    "fat2019-curated": ("train_curated.csv", _FAT, "train_curated", "<fname>"),
    "fat2019-noisy": ("train_noisy.csv", _FAT, "train_noisy", "<fname>"),
    "rfcx-tp": ("train_tp.csv", _RFCX, "train", "<recording_id>.flac"),
    "rfcx-fp": ("train_fp.csv", _RFCX, "train", "<recording_id>.flac"),
}


def describe(width: int = 100) -> str:
    """Two or more lines per format: its metadata file and columns, then where its audio is."""
    lines = []
    for name, (meta, columns, audio, path) in LAYOUTS.items():
        lines += textwrap.wrap(
            f"DIR/{meta}: {columns}",
            width,
            initial_indent=f"  {name:<16}",
            subsequent_indent=" " * 18,
        )
        lines.append(" " * 18 + f"audio: DIR/{audio + '/' if audio else ''}{path}")
    return "\n".join(lines)
