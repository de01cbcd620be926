"""The plan of a shard build: catalog rows checked, recordings cut into windows, rows grouped into
shards per fold, each with the fingerprint of everything its bytes depend on."""

from __future__ import annotations

import hashlib
import json
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from birdtpu.data.audio import AudioError, audio_info, container_problem
from birdtpu.data.shards.manifest import SCHEMA_VERSION
from birdtpu.errors import DataError, shown

CROPS = ("first", "whole", "random", "boxes")
REQUIRED_COLUMNS = ("filepath", "filename", "label", "fold")
_TRUE = {"true", "1", "yes", "tp", "1.0", ""}
_FALSE = {"false", "0", "no", "fp", "0.0"}


@dataclass
class ShardPlan:
    """One shard to write: its file name, fold, rows (plain dicts) and the fingerprint of all three."""

    name: str
    fold: int
    rows: list[dict] = field(default_factory=list)
    fingerprint: str = ""


@dataclass(frozen=True)
class WriteOptions:
    """How every shard of a build decodes and writes (the same in every worker)."""

    sample_rate: int
    compression: str = ""
    channel: int = -1  # -1 averages the channels
    decoder: str = "auto"
    read_seconds: float | None = None  # decode only the start of each recording (crop: first)


# ----------------------------------------------------------------------------- catalog rows


def _flags(values: pd.Series, column: str) -> np.ndarray:
    """A tp/fp marker column as bools (True for tp, and where empty); DataError names a bad row."""
    if values.dtype == bool:
        return values.to_numpy()
    out = np.ones(len(values), bool)
    for i, value in enumerate(values):
        if isinstance(value, (bool, np.bool_)):
            out[i] = bool(value)
        elif pd.api.types.is_scalar(value) and pd.isna(value):
            continue
        elif str(value).strip().lower() in _FALSE:
            out[i] = False
        elif str(value).strip().lower() not in _TRUE:
            raise DataError(f"catalog row {values.index[i]}: {column} {value!r} is not true/false")
    return out


def _boxes(df: pd.DataFrame) -> list:
    """Per row (t_min, t_max, f_min, f_max) or None; f bounds -1 where unknown."""
    if "t_min" not in df.columns or "t_max" not in df.columns:
        return [None] * len(df)
    cols = {
        c: pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64)
        if c in df.columns
        else np.full(len(df), np.nan)
        for c in ("t_min", "t_max", "f_min", "f_max")
    }
    t0, t1 = cols["t_min"], cols["t_max"]
    half = np.isfinite(t0) != np.isfinite(t1)
    bad = half | (np.isfinite(t0) & np.isfinite(t1) & ((t1 <= t0) | (t0 < 0)))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"catalog row {df.index[i]} ({df['filepath'].iat[i]}): box t_min {t0[i]} - t_max {t1[i]} "
            "is not a time span (both set, 0 <= t_min < t_max)"
        )
    f0, f1 = (np.where(np.isfinite(cols[c]), cols[c], -1.0) for c in ("f_min", "f_max"))
    return [
        (float(t0[i]), float(t1[i]), float(f0[i]), float(f1[i])) if np.isfinite(t0[i]) else None
        for i in range(len(df))
    ]


def catalog_rows(
    df: pd.DataFrame, classes: list[str], targets=None, crop: str = "first"
) -> list[dict]:
    """The catalog as plain rows for the shard plan, checked; DataError names a missing column or bad row.

    `targets` (rows x classes) default to one-hot of the primary label, zero for fp rows
    (`positive` False, or `is_tp` False where there is no `positive` column).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        hint = " (assign folds before sharding)" if "fold" in missing else ""
        raise DataError(
            f"catalog has no column(s) {', '.join(missing)}{hint}; "
            f"needed: {', '.join(REQUIRED_COLUMNS)}"
        )
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(df["label"]) - set(index), key=str)
    if unknown:
        raise DataError(f"labels not in the label map: {', '.join(map(str, unknown[:5]))}")
    folds = pd.to_numeric(df["fold"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(folds) | (folds < -1) | (folds != np.round(folds))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"catalog row {df.index[i]} ({df['filepath'].iat[i]}): fold {shown(df['fold'].iat[i])} "
            "is not an integer >= -1"
        )
    marker = next((c for c in ("positive", "is_tp") if c in df.columns), None)
    positive = _flags(df[marker], marker) if marker else np.ones(len(df), bool)
    labels = df["label"].map(index).to_numpy(np.int64)
    if targets is None:
        targets = np.eye(len(classes), dtype=np.float32)[labels] * positive[:, None]
    targets = np.asarray(targets, np.float32)
    if targets.shape != (len(df), len(classes)):
        raise DataError(
            f"targets have shape {targets.shape}, expected (rows, classes) = ({len(df)}, {len(classes)})"
        )
    boxes = _boxes(df)
    if crop == "boxes" and "t_min" not in df.columns:
        raise DataError("shards.crop is 'boxes' but the catalog has no t_min/t_max columns")
    sources = (
        df["source"].fillna("").astype(str).to_numpy() if "source" in df.columns else [""] * len(df)
    )
    seen: dict[str, int] = {}
    rows = []
    for i, (path, name, label) in enumerate(zip(df["filepath"], df["filename"], df["label"])):
        seen[name] = seen.get(name, -1) + 1
        rows.append(
            {
                "filepath": str(path),
                "filename": str(name),
                "source": str(sources[i]),
                "label": label,
                "label_index": int(labels[i]),
                "target": targets[i],
                "positive": bool(positive[i]),
                "fold": int(folds[i]),
                "box": boxes[i],
                "occurrence": seen[name],
            }
        )
    return rows


# ----------------------------------------------------------------------------- plan


def _headers(paths: list[str], decoder: str) -> dict[str, float | str]:
    """Duration in seconds per path, or the reason it is unusable (headers read by threads)."""

    def one(path):
        try:
            seconds = audio_info(path, decoder)[1]
        except AudioError as err:
            return err.reason
        return seconds if seconds > 0 else container_problem(path) or "empty (no samples)"

    with ThreadPoolExecutor(min(16, max(1, len(paths)))) as pool:
        return dict(zip(paths, pool.map(one, paths)))


def crop_windows(
    row: dict, seconds: float, crop: str, length: float, count: int, seed: int
) -> list[list[float]]:
    """[start, end] seconds of the records cut from one recording (see ShardConfig.crop).

    Random starts come from (seed, file name, how many rows of the catalog named the file before),
    so they do not depend on shard sizes or workers, and a repeated (upsampled) row gets new ones.
    """
    if crop == "whole" or seconds <= length:
        return [[0.0, seconds]]
    if crop == "first" or (crop == "boxes" and row["box"] is None):
        return [[0.0, length]]
    rng = np.random.default_rng(
        [seed & 0xFFFFFFFF, zlib.crc32(row["filename"].encode()), row["occurrence"]]
    )
    if crop == "random":
        starts = np.sort(rng.uniform(0.0, seconds - length, count))
    else:
        t0, t1 = row["box"][:2]
        lo, hi = max(0.0, t1 - length), min(t0, seconds - length)
        starts = (
            [rng.uniform(lo, hi)]
            if lo <= hi
            else [min(max((t0 + t1 - length) / 2, 0.0), seconds - length)]
        )
    return [[round(float(s), 3), round(float(s) + length, 3)] for s in starts]


def plan_shards(
    rows: list[dict], shard_cfg, options: WriteOptions, seed: int = 0, log=print
) -> tuple[list[ShardPlan], list[dict]]:
    """Shards per fold (rows sorted by file name), each up to `target_mb` of PCM; and the rows skipped."""
    durations = _headers(sorted({r["filepath"] for r in rows}), options.decoder)
    skipped, by_fold = [], {}
    for row in rows:
        seconds = durations[row["filepath"]]
        if isinstance(seconds, str):
            skipped.append({"file": row["filepath"], "reason": seconds})
            log(f"shard: skip {row['filepath']}: {seconds}")
            continue
        row = {
            **row,
            "seconds": seconds,
            "windows": crop_windows(
                row, seconds, shard_cfg.crop, shard_cfg.max_seconds, shard_cfg.windows, seed
            ),
        }
        by_fold.setdefault(row["fold"], []).append(row)
    target = shard_cfg.target_mb * 2**20
    plans = []
    for fold in sorted(by_fold):
        current, size, n = None, 0.0, 0
        for row in sorted(by_fold[fold], key=lambda r: r["filename"]):
            if current is None or size >= target:
                current, size, n = ShardPlan(f"fold{fold}-{n:05d}.tfrec", fold), 0.0, n + 1
                plans.append(current)
            current.rows.append(row)
            size += sum(end - start for start, end in row["windows"]) * options.sample_rate * 2
    for plan in plans:
        plan.fingerprint = _fingerprint(plan, options)
    return plans, skipped


def _fingerprint(plan: ShardPlan, options: WriteOptions) -> str:
    """A digest of everything a shard's bytes depend on: a sidecar with another is stale."""
    digest = hashlib.sha256(
        json.dumps([SCHEMA_VERSION, plan.name, plan.fold, asdict(options)]).encode()
    )
    for r in plan.rows:
        digest.update(
            json.dumps(
                [
                    r["filepath"],
                    r["filename"],
                    r["source"],
                    r["label_index"],
                    r["positive"],
                    r["seconds"],
                    r["windows"],
                    r["box"],
                ]
            ).encode()
        )
        digest.update(np.asarray(r["target"], "<f4").tobytes())
    return digest.hexdigest()
