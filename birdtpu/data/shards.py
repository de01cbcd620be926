"""TFRecord shards of int16 PCM, decoded once on the host, with a manifest (schema: tfrecords/README.md).

A build reads the catalog's rows, plans shards per fold to a target size from the file headers
(and cuts long recordings into windows by `shards.crop`), then decodes and writes each shard,
in worker processes, under a temporary name that is renamed when the shard is complete. A
sidecar JSON with the shard's counts, checksum and the fingerprint of its plan follows; a shard
whose sidecar matches its plan is done, so a killed build rerun writes only the rest.
`manifest.json` is written last. Same catalog, settings and seed give byte-identical shards,
whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import re
import time
import zlib
from concurrent.futures import (
    FIRST_COMPLETED,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import asdict, dataclass, field
from queue import Empty

import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.data.audio import AudioError, audio_info, container_problem, load_audio
from birdtpu.data.catalog import skip_summary
from birdtpu.errors import DataError, shown
from birdtpu.fs import join
from birdtpu.progress import Progress

SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
CROPS = ("first", "whole", "random", "boxes")
REQUIRED_COLUMNS = ("filepath", "filename", "label", "fold")
NO_BOX = (-1.0, -1.0, -1.0, -1.0)
_TEMPORARY = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")  # names from fs.temp_name
NO_SPACE = "free space or choose another shards.dir; finished shards are kept, rerun to resume"
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


# ----------------------------------------------------------------------------- records


def _int_feature(values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _float_feature(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _bytes_feature(values):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def serialize_example(
    pcm: np.ndarray,
    sample_rate: int,
    target: np.ndarray,
    label: int,
    fold: int,
    clip_id: str,
    source: str,
    duration: float,
    offset: float = 0.0,
    box=None,
    positive: bool = True,
) -> bytes:
    """One record: int16 PCM plus what the pipeline needs (schema in tfrecords/README.md).

    `box` is (t_min, t_max) in seconds from the start of `pcm` and (f_min, f_max) in Hz, or None.
    Serialized deterministically (map keys sorted), so equal inputs give equal bytes.
    """
    import tensorflow as tf

    feats = {
        "audio": _bytes_feature([pcm.astype("<i2").tobytes()]),
        "num_samples": _int_feature([len(pcm)]),
        "sample_rate": _int_feature([sample_rate]),
        "target": _float_feature(target),
        "label": _int_feature([label]),
        "fold": _int_feature([fold]),
        "id": _bytes_feature([clip_id.encode()]),
        "source": _bytes_feature([source.encode()]),
        "duration": _float_feature([duration]),
        "offset": _float_feature([offset]),
        "box": _float_feature(NO_BOX if box is None else box),
        "has_box": _int_feature([box is not None]),
        "positive": _int_feature([bool(positive)]),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feats))
    return example.SerializeToString(deterministic=True)


def parse_example(serialized, num_classes: int) -> dict:
    """A record (schema version 2, tfrecords/README.md) as float32 audio in [-1, 1] and its fields."""
    import tensorflow as tf

    ex = tf.io.parse_single_example(
        serialized, {"audio": tf.io.FixedLenFeature([], tf.string), **_field_spec(num_classes)}
    )
    ex["audio"] = tf.cast(tf.io.decode_raw(ex["audio"], tf.int16), tf.float32) / 32767.0
    return ex


def parse_header(serialized, num_classes: int | None) -> dict:
    """A record's fields without its audio, plus `record` (the serialized bytes) and `pcm_at`
    (the byte offset of its PCM there, -1 if not found), so that `pcm_window` reads only a window.

    Parsing skips the audio bytes instead of copying them, and a training crop decodes only its
    own samples: a 5-s crop of a 60-s record converts 5 s, not 60. `num_classes` None: no `target`.
    """
    import tensorflow as tf

    ex = tf.io.parse_single_example(serialized, _field_spec(num_classes))
    ex["record"] = serialized
    ex["pcm_at"] = _pcm_offset(serialized, 2 * ex["num_samples"])
    return ex


def pcm_window(header: dict, start, length: int):
    """int16 samples [start, start + length) of a `parse_header` record (fewer at its end), read
    from its bytes at `pcm_at`, or by a full parse where the layout was not found."""
    import tensorflow as tf

    start = tf.cast(start, tf.int64)
    count = tf.clip_by_value(header["num_samples"] - start, 0, length)

    def direct():
        return tf.strings.substr(header["record"], header["pcm_at"] + 2 * start, 2 * count)

    def parsed():
        audio = tf.io.parse_single_example(
            header["record"], {"audio": tf.io.FixedLenFeature([], tf.string)}
        )
        return tf.strings.substr(audio["audio"], 2 * start, 2 * count)

    return tf.io.decode_raw(tf.cond(header["pcm_at"] >= 0, direct, parsed), tf.int16)


_VARINT_BOUNDS = [float(1 << (7 * k)) for k in range(1, 5)]


def _varint_size(x):
    """Bytes of the protobuf varints of `x` (int64 tensor, values < 2**35): 3 ops, whatever the shape."""
    import tensorflow as tf

    return 1 + tf.cast(tf.raw_ops.Bucketize(input=x, boundaries=_VARINT_BOUNDS), tf.int64)


def _pcm_offset(serialized, num_bytes):
    """Where the `audio` bytes start in a record written by `serialize_example`, or -1.

    Deterministic serialization puts the features in key order, so `audio` is the first entry:
    Example{features{feature{key "audio", value{bytes_list{value: <num_bytes bytes>}}}, ...}}. The
    offset follows from the lengths; the key and the bytes' length prefix are checked at the
    positions found, so a record laid out otherwise (another writer) gets -1 and a full parse.
    Few, small ops: this runs once per record in the input pipeline.
    """
    import tensorflow as tf

    size = tf.cast(tf.strings.length(serialized), tf.int64)
    n_len = _varint_size(num_bytes)
    bytes_list = 1 + n_len + num_bytes
    list_len = _varint_size(bytes_list)
    feature = 1 + list_len + bytes_list
    feature_len = _varint_size(feature)
    entry_len = _varint_size(
        8 + feature_len + feature
    )  # entry: key tag, length, "audio", value tag, feature
    # the outer length prefix: the k in 1..5 with varint_size(size - 1 - k) == k
    ks = tf.range(1, 6, dtype=tf.int64)
    outer = tf.reduce_max(tf.where(_varint_size(size - 1 - ks) == ks, ks, tf.zeros_like(ks)))
    key_at = 2 + outer + entry_len
    length_at = key_at + 10 + feature_len + list_len
    groups = tf.range(5, dtype=tf.int64)
    digits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(num_bytes, 7 * groups), 127)
    zero, high = tf.constant(0, tf.int64), tf.constant(128, tf.int64)
    varint = tf.where(groups < n_len, digits + tf.where(groups < n_len - 1, high, zero), zero)
    found = tf.io.decode_raw(
        tf.strings.substr(serialized, length_at, n_len), tf.uint8, fixed_length=5
    )
    ok = (
        (tf.strings.substr(serialized, key_at, 7) == b"\x0a\x05audio")
        & tf.reduce_all(tf.cast(found, tf.int64) == varint)
        & (length_at + n_len + num_bytes <= size)
    )
    return tf.where(ok, length_at + n_len, tf.constant(-1, tf.int64))


def _field_spec(num_classes: int | None) -> dict:
    """The parse spec of every record field but `audio` (and `target` where `num_classes` is None)."""
    import tensorflow as tf

    spec = {
        "num_samples": tf.io.FixedLenFeature([], tf.int64),
        "sample_rate": tf.io.FixedLenFeature([], tf.int64),
        "target": tf.io.FixedLenFeature([num_classes], tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "fold": tf.io.FixedLenFeature([], tf.int64),
        "id": tf.io.FixedLenFeature([], tf.string),
        "source": tf.io.FixedLenFeature([], tf.string),
        "duration": tf.io.FixedLenFeature([], tf.float32),
        "offset": tf.io.FixedLenFeature([], tf.float32),
        "box": tf.io.FixedLenFeature([4], tf.float32),
        "has_box": tf.io.FixedLenFeature([], tf.int64),
        "positive": tf.io.FixedLenFeature([], tf.int64),
    }
    if num_classes is None:
        del spec["target"]
    return spec


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as int16 (clipped, rounded)."""
    return np.round(np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)


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


# ----------------------------------------------------------------------------- write


def write_shard(plan: ShardPlan, out_dir: str, options: WriteOptions, tick=None) -> dict:
    """Decode and write one shard (temporary name, then rename) and its sidecar; returns its entry.

    `tick(recordings, seconds)` is called after each row. Rows of one recording in a row decode it once.
    """
    import tensorflow as tf

    path = join(out_dir, plan.name)
    tmp = fs.temp_name(path)
    rate = options.sample_rate
    per_class: dict[str, int] = {}
    negatives: dict[str, int] = {}
    skipped: list[dict] = []
    examples, recordings, seconds = 0, 0, 0.0
    current, wave, error = None, None, None
    try:
        with tf.io.TFRecordWriter(
            tmp, tf.io.TFRecordOptions(compression_type=options.compression or None)
        ) as writer:
            for row in plan.rows:
                if row["filepath"] != current:
                    current = row["filepath"]
                    try:
                        wave, error = (
                            load_audio(
                                current,
                                rate,
                                None if options.channel < 0 else options.channel,
                                options.read_seconds,
                                decoder=options.decoder,
                            )[0],
                            None,
                        )
                    except AudioError as err:
                        wave, error = None, err.reason
                written = 0.0
                if error:
                    skipped.append({"file": current, "reason": error})
                else:
                    for start, end in row["windows"]:
                        pcm = to_pcm16(wave[int(round(start * rate)) : int(round(end * rate))])
                        if not len(pcm):
                            skipped.append(
                                {
                                    "file": current,
                                    "reason": f"window {start}-{end} s starts after the "
                                    f"decoded end ({len(wave) / rate:.2f} s)",
                                }
                            )
                            continue
                        writer.write(_record(row, pcm, rate, plan.fold, start))
                        counts = per_class if row["positive"] else negatives
                        counts[row["label"]] = counts.get(row["label"], 0) + 1
                        examples += 1
                        written += len(pcm) / rate
                    recordings += 1
                seconds += written
                if tick:
                    tick(1, written)
        fs.sync(tmp)
        entry = {
            "file": plan.name,
            "fold": plan.fold,
            "examples": examples,
            "recordings": recordings,
            "seconds": round(seconds, 3),
            "bytes": fs.size(tmp),
            "sha256": fs.sha256(tmp),
            "per_class": per_class,
            "negatives": negatives,
            "skipped": skipped,
            "fingerprint": plan.fingerprint,
        }
        fs.rename(tmp, path)
    except BaseException as err:  # the temporary file goes; a kill leaves it to the next build
        fs.discard(tmp)
        if fs.out_of_space(err):
            raise fs.NoSpaceError(path, NO_SPACE) from None
        raise
    fs.write_json(path + ".json", entry)
    return entry


def _record(row: dict, pcm: np.ndarray, rate: int, fold: int, start: float) -> bytes:
    box = None
    if row["box"] is not None:  # times from the start of this record
        box = (round(row["box"][0] - start, 4), round(row["box"][1] - start, 4), *row["box"][2:])
    return serialize_example(
        pcm,
        rate,
        row["target"],
        row["label_index"],
        fold,
        row["filename"],
        row["source"],
        row["seconds"],
        start,
        box,
        row["positive"],
    )


def _done(out_dir: str, plan: ShardPlan, verify: bool = False) -> dict | None:
    """The sidecar entry of a finished shard of this very plan, or None where it must be (re)written.
    The shard's size must match its sidecar, and with `verify` its sha256 too."""
    path = join(out_dir, plan.name)
    sidecar = path + ".json"
    if not (fs.exists(sidecar) and fs.exists(path)):
        return None
    try:
        entry = fs.read_json(sidecar)
    except ValueError:
        return None
    if entry.get("fingerprint") != plan.fingerprint or entry.get("bytes") != fs.size(path):
        return None
    if verify and entry.get("sha256") != fs.sha256(path):
        return None
    return entry


def check_shards(shard_dir: str, manifest: dict, verify: bool = False) -> list[str]:
    """What is wrong with the shards a manifest lists, one line per shard: missing, another size
    (truncated), or with `verify` (which reads every byte) another sha256. Empty when all is well."""
    problems = []
    for e in manifest["shards"]:
        path = join(shard_dir, e["file"])
        if not fs.exists(path):
            problems.append(f"{path}: shard listed in the manifest is missing")
        elif fs.size(path) != e["bytes"]:
            problems.append(
                f"{path}: shard has {fs.size(path)} bytes, the manifest says {e['bytes']} "
                "(truncated or overwritten)"
            )
        elif verify and fs.sha256(path) != e["sha256"]:
            problems.append(f"{path}: shard bytes do not match the manifest's sha256 (corrupt)")
    return problems


def _remove_temporaries(out_dir: str) -> int:
    """Delete the temporary files an interrupted build left in `out_dir`; returns how many."""
    names = [n for n in fs.listdir(out_dir) if _TEMPORARY.match(n)]
    for name in names:
        fs.remove(join(out_dir, name))
    return len(names)


# ----------------------------------------------------------------------------- workers

_QUEUE = None  # a worker's channel for per-row progress


def _init_worker(queue) -> None:
    global _QUEUE
    _QUEUE = queue


def _write_in_worker(plan: ShardPlan, out_dir: str, options: WriteOptions) -> dict:
    return write_shard(plan, out_dir, options, lambda n, s: _QUEUE.put((n, s)))


def _drain(queue, progress: Progress) -> None:
    while True:
        try:
            progress.advance(*queue.get_nowait())
        except Empty:
            return


def _write_all(
    plans: list[ShardPlan], out_dir: str, options: WriteOptions, workers: int, progress: Progress
):
    """Write `plans`, in-process for one worker, else in spawned processes; yields entries as shards finish."""
    workers = min(workers or fs.cores(), len(plans))
    if workers <= 1:
        for plan in plans:
            yield write_shard(plan, out_dir, options, progress.advance)
        return
    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    queue = ctx.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,))
    try:
        pending = {pool.submit(_write_in_worker, plan, out_dir, options) for plan in plans}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _drain(queue, progress)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _drain(queue, progress)


# ----------------------------------------------------------------------------- build


def build_shards(
    df: pd.DataFrame,
    classes: list[str],
    out_dir: str,
    sample_rate: int,
    shard_cfg,
    config: dict | None = None,
    targets: np.ndarray | None = None,
    log=print,
    *,
    seed: int = 0,
    progress_every: float = 30.0,
    verify: bool = False,
) -> dict:
    """Write the shards of catalog `df` (with `fold`) into `out_dir` (local or gs://); returns the manifest.

    `shard_cfg` is a ShardConfig; `config` (the settings the set depends on) is stored in the
    manifest; `targets` (rows x classes) default to one-hot of the primary label; `seed` draws the
    random windows. Finished shards of an earlier, interrupted build of the same plan are kept (with
    `verify`, only those whose bytes match their sha256). A full disk raises NoSpaceError; the
    temporary file goes, finished shards stay.
    Unusable recordings are skipped, logged and listed in the manifest with their reason.
    """
    if shard_cfg.crop not in CROPS:
        raise DataError(f"shards.crop {shard_cfg.crop!r}: expected one of {', '.join(CROPS)}")
    rows = catalog_rows(df, classes, targets, shard_cfg.crop)
    options = WriteOptions(
        sample_rate,
        shard_cfg.compression,
        shard_cfg.channel,
        shard_cfg.decoder,
        shard_cfg.max_seconds if shard_cfg.crop == "first" else None,
    )
    fs.makedirs(out_dir)
    removed = _remove_temporaries(out_dir)
    if removed:
        log(f"shard: removed {removed} temporary file(s) of an interrupted build")
    started = time.time()
    log(f"shard: planning {len(rows)} rows from the headers of their recordings")
    plans, skipped = plan_shards(rows, shard_cfg, options, seed, log)
    planned = sum(end - start for p in plans for r in p.rows for start, end in r["windows"])
    log(
        f"shard: {len(plans)} shards of {planned / 3600:.2f} h of audio planned in {time.time() - started:.1f} s"
    )
    entries = {p.name: _done(out_dir, p, verify) for p in plans}
    todo = [p for p in plans if entries[p.name] is None]
    if len(todo) < len(plans):
        log(f"shard: resuming, {len(plans) - len(todo)} of {len(plans)} shards already written")
    progress = Progress(sum(len(p.rows) for p in todo), log, progress_every)
    try:
        for n, entry in enumerate(
            _write_all(todo, out_dir, options, shard_cfg.workers, progress), 1
        ):
            entries[entry["file"]] = entry
            for bad in entry["skipped"]:
                progress.message(f"shard: skip {bad['file']}: {bad['reason']}")
            progress.message(
                f"shard: [{n}/{len(todo)}] {entry['file']}: {entry['examples']} clips, "
                f"{entry['seconds']:.0f} s"
            )
        build = {
            "sample_rate": sample_rate,
            "seed": seed,
            **{
                k: getattr(shard_cfg, k)
                for k in (
                    "target_mb",
                    "compression",
                    "crop",
                    "max_seconds",
                    "windows",
                    "channel",
                    "decoder",
                )
            },
        }
        manifest = _manifest(
            [entries[p.name] for p in plans], skipped, classes, len(rows), build, config
        )
        fs.write_json(join(out_dir, MANIFEST), manifest)
    except fs.NoSpaceError as err:  # a sidecar or the manifest: the same advice as for a shard
        raise fs.NoSpaceError(err.path, NO_SPACE) from None
    finally:
        progress.close()
    log(
        f"shard: {manifest['examples']} clips, {manifest['total_seconds'] / 3600:.2f} h of audio in "
        f"{len(plans)} shards, {len(manifest['skipped'])} skipped, {time.time() - started:.1f} s -> {out_dir}"
    )
    if manifest["skipped"]:
        log(
            skip_summary(
                "shard",
                [s["reason"] for s in manifest["skipped"]],
                manifest["inputs"],
                "recordings",
            )
        )
    return manifest


def _manifest(
    entries: list[dict],
    skipped: list[dict],
    classes: list[str],
    inputs: int,
    build: dict,
    config: dict | None,
) -> dict:
    per_class: dict[str, int] = {c: 0 for c in classes}
    negatives: dict[str, int] = {}
    per_fold: dict[str, int] = {}
    for e in entries:
        for label, n in e["per_class"].items():
            per_class[label] += n
        for label, n in e["negatives"].items():
            negatives[label] = negatives.get(label, 0) + n
        per_fold[str(e["fold"])] = per_fold.get(str(e["fold"]), 0) + e["examples"]
    return {
        "schema_version": SCHEMA_VERSION,
        "sample_rate": build["sample_rate"],
        "compression": build["compression"],
        "classes": classes,
        "inputs": inputs,
        "recordings": sum(e["recordings"] for e in entries),
        "examples": sum(e["examples"] for e in entries),
        "total_seconds": round(sum(e["seconds"] for e in entries), 3),
        "per_class": per_class,
        "negatives": dict(sorted(negatives.items())),
        "per_fold": per_fold,
        "shards": entries,
        "skipped": skipped + [s for e in entries for s in e["skipped"]],
        "build": build,
        "config": config or {},
    }


# ----------------------------------------------------------------------------- read


def read_manifest(shard_dir: str) -> dict:
    """The manifest of a shard set; refuses a missing or unreadable one, or an unknown schema version."""
    path = join(shard_dir, MANIFEST)
    if not fs.exists(path):
        raise DataError(f"{path}: no shard manifest (run `birdtpu shard` first)")
    try:
        manifest = fs.read_json(path)
    except ValueError as err:
        raise DataError(
            f"{path}: not valid JSON ({err}); rebuild the shards (`birdtpu shard --rebuild`)"
        ) from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise DataError(
            f"{path}: shard schema version {version!r} is not supported (this birdtpu reads "
            f"version {SCHEMA_VERSION}); rebuild the shards (`birdtpu shard --rebuild`)"
        )
    return manifest


def shard_paths(
    shard_dir: str, manifest: dict, folds: list[int] | None = None, exclude: list[int] | None = None
) -> list[str]:
    """Paths of the shards in `folds` (all when None) minus `exclude`; each must exist."""
    paths = []
    for e in manifest["shards"]:
        if (
            (folds is None or e["fold"] in folds)
            and e["fold"] not in (exclude or [])
            and e["examples"]
        ):
            path = join(shard_dir, e["file"])
            if not fs.exists(path):
                raise DataError(
                    f"{path}: shard listed in the manifest is missing; rerun `birdtpu shard`"
                )
            paths.append(path)
    return paths
