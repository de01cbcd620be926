"""Audio checks of a catalog: a decode of every recording (unusable files dropped, durations filled)."""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog.merge import dropped_rows, no_drops


def missing_files(df: pd.DataFrame) -> list[str]:
    """The recordings of `df` that do not exist, in table order (local paths; URLs unchecked)."""
    return [p for p in df["filepath"].unique() if not fs.is_remote(p) and not os.path.exists(p)]


def missing_warning(df: pd.DataFrame) -> list[str]:
    """A warning line naming the recordings of `df` that do not exist (count, folder, first
    names), or none."""
    missing = missing_files(df)
    if not missing:
        return []
    folder = os.path.commonpath([os.path.dirname(p) for p in missing[:3]])
    names = ", ".join(os.path.relpath(p, folder) for p in missing[:3])
    return [
        f"warning: {len(missing)} of {df['filepath'].nunique()} recordings do not exist "
        f"(first in {folder}: {names}); check the source's layout (--help) and --audio-dir, "
        "or drop them with --check-audio"
    ]


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
