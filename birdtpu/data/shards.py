"""TFRecord shards of int16 PCM, decoded once on the host, with a manifest.

A build plans shards from the catalog (per fold, to a target size, from file headers), writes
each shard under a temporary name and renames it when complete, then writes a sidecar JSON with
its counts and checksum. A shard with a sidecar is done: a killed build rerun redoes only the
rest. `manifest.json` is written last. The record schema is in `tfrecords/README.md`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from birdtpu import io
from birdtpu.config import join
from birdtpu.data.audio import AudioError, audio_info, load_audio
from birdtpu.errors import DataError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


@dataclass
class ShardPlan:
    """One shard to write: its file name, fold and catalog rows (as plain dicts)."""

    name: str
    fold: int
    rows: list[dict] = field(default_factory=list)


def _int_feature(values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float_feature(values):
    import tensorflow as tf

    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _bytes_feature(values):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def serialize_example(pcm: np.ndarray, sample_rate: int, target: np.ndarray, label: int, fold: int,
                      clip_id: str, source: str, duration: float) -> bytes:
    """One record: int16 PCM plus what the pipeline needs (schema in tfrecords/README.md)."""
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
    }
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def parse_example(serialized, num_classes: int) -> dict:
    """A record (schema in tfrecords/README.md) as float32 audio in [-1, 1] and its fields."""
    import tensorflow as tf

    spec = {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "num_samples": tf.io.FixedLenFeature([], tf.int64),
        "sample_rate": tf.io.FixedLenFeature([], tf.int64),
        "target": tf.io.FixedLenFeature([num_classes], tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "fold": tf.io.FixedLenFeature([], tf.int64),
        "id": tf.io.FixedLenFeature([], tf.string),
        "source": tf.io.FixedLenFeature([], tf.string),
        "duration": tf.io.FixedLenFeature([], tf.float32),
    }
    ex = tf.io.parse_single_example(serialized, spec)
    ex["audio"] = tf.cast(tf.io.decode_raw(ex["audio"], tf.int16), tf.float32) / 32767.0
    return ex


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as int16 (clipped, rounded)."""
    return np.round(np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)


def plan_shards(df: pd.DataFrame, sample_rate: int, target_mb: float, max_seconds: float,
                log=print) -> tuple[list[ShardPlan], list[dict]]:
    """Shards per fold, each up to `target_mb` of PCM (from headers); and the files skipped."""
    plans, skipped = [], []
    target_bytes = target_mb * 2**20
    for fold, group in df.groupby("fold", sort=True):
        current, size = None, 0.0
        for row in group.sort_values("filename", kind="stable").to_dict("records"):
            try:
                _, seconds = audio_info(row["filepath"])
            except AudioError as err:
                skipped.append({"file": row["filepath"], "reason": err.reason})
                log(f"shard: skip {row['filepath']}: {err.reason}")
                continue
            if current is None or size >= target_bytes:
                current, size = ShardPlan(f"fold{int(fold)}-{len(plans):05d}.tfrec", int(fold)), 0.0
                plans.append(current)
            row["_seconds"] = seconds
            current.rows.append(row)
            size += min(seconds, max_seconds) * sample_rate * 2
    return plans, skipped


def write_shard(plan: ShardPlan, out_dir: str, sample_rate: int, max_seconds: float,
                compression: str) -> dict:
    """Decode and write one shard (temporary name, then rename); returns its manifest entry."""
    import tensorflow as tf

    path = join(out_dir, plan.name)
    tmp = io.temp_name(path)
    counts: dict[str, int] = {}
    skipped, seconds, examples = [], 0.0, 0
    options = tf.io.TFRecordOptions(compression_type=compression or None)
    with tf.io.TFRecordWriter(tmp, options) as writer:
        for row in plan.rows:
            try:
                wave, _ = load_audio(row["filepath"], sample_rate, max_seconds=max_seconds)
            except AudioError as err:
                skipped.append({"file": row["filepath"], "reason": err.reason})
                continue
            writer.write(serialize_example(
                to_pcm16(wave), sample_rate, row["target"], int(row["label_index"]), plan.fold,
                row["filename"], str(row["source"]), float(row["_seconds"])))
            examples += 1
            seconds += len(wave) / sample_rate
            counts[row["label"]] = counts.get(row["label"], 0) + 1
    io.commit(tmp, path)
    entry = {"file": plan.name, "fold": plan.fold, "examples": examples, "seconds": round(seconds, 3),
             "bytes": _size(path), "sha256": _sha256(path), "per_class": counts, "skipped": skipped}
    io.write_json(path + ".json", entry)
    return entry


def _size(path: str) -> int:
    import tensorflow as tf

    return int(tf.io.gfile.stat(path).length)


def _sha256(path: str) -> str:
    import tensorflow as tf

    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _done(out_dir: str, plan: ShardPlan) -> dict | None:
    """The sidecar entry of a finished shard, or None where it must be (re)written."""
    sidecar = join(out_dir, plan.name + ".json")
    if not (io.exists(sidecar) and io.exists(join(out_dir, plan.name))):
        return None
    entry = io.read_json(sidecar)
    return entry if entry.get("examples", 0) + len(entry.get("skipped", [])) == len(plan.rows) else None


def build_shards(df: pd.DataFrame, classes: list[str], out_dir: str, sample_rate: int, shard_cfg,
                 config: dict | None = None, targets: np.ndarray | None = None, log=print) -> dict:
    """Write the shards of catalog `df` (with `fold`) into `out_dir`; returns the manifest.

    `targets` (rows x classes) defaults to one-hot of the primary label. Finished shards of an
    earlier, interrupted build with the same plan are kept. Unusable recordings are skipped,
    logged and listed in the manifest with their reason.
    """
    if "fold" not in df.columns:
        raise DataError("catalog has no `fold` column: assign folds before sharding")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(df["label"]) - set(index))
    if unknown:
        raise DataError(f"labels not in the label map: {', '.join(unknown[:5])}")
    df = df.copy()
    df["label_index"] = df["label"].map(index)
    if targets is None:
        targets = np.eye(len(classes), dtype=np.float32)[df["label_index"].to_numpy()]
    df["target"] = list(np.asarray(targets, np.float32))
    io.makedirs(out_dir)
    started = time.time()
    plans, skipped = plan_shards(df, sample_rate, shard_cfg.target_mb, shard_cfg.max_seconds, log)
    entries = {p.name: _done(out_dir, p) for p in plans}
    todo = [p for p in plans if entries[p.name] is None]
    if len(todo) < len(plans):
        log(f"shard: resuming, {len(plans) - len(todo)} of {len(plans)} shards already written")
    args = (out_dir, sample_rate, shard_cfg.max_seconds, shard_cfg.compression)
    for n, entry in enumerate(_run(todo, args, shard_cfg.workers), 1):
        entries[entry["file"]] = entry
        for bad in entry["skipped"]:
            log(f"shard: skip {bad['file']}: {bad['reason']}")
        log(f"shard: [{n}/{len(todo)}] {entry['file']}: {entry['examples']} clips, {entry['seconds']:.0f} s")
    manifest = _manifest([entries[p.name] for p in plans], skipped, classes, sample_rate, config)
    io.write_json(join(out_dir, MANIFEST), manifest)
    log(f"shard: {manifest['examples']} clips, {manifest['total_seconds'] / 3600:.2f} h of audio in "
        f"{len(plans)} shards, {len(manifest['skipped'])} skipped, {time.time() - started:.1f} s -> {out_dir}")
    return manifest


def _run(plans: list[ShardPlan], args: tuple, workers: int):
    """Write `plans`, in-process for one worker or one shard, else in spawned processes."""
    workers = min(workers or os.cpu_count() or 1, len(plans))
    if workers <= 1:
        for plan in plans:
            yield write_shard(plan, *args)
        return
    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        futures = [pool.submit(write_shard, plan, *args) for plan in plans]
        for future in futures:
            yield future.result()


def _manifest(entries: list[dict], skipped: list[dict], classes: list[str], sample_rate: int,
              config: dict | None) -> dict:
    per_class: dict[str, int] = {c: 0 for c in classes}
    per_fold: dict[str, int] = {}
    for e in entries:
        for label, n in e["per_class"].items():
            per_class[label] += n
        per_fold[str(e["fold"])] = per_fold.get(str(e["fold"]), 0) + e["examples"]
    return {
        "schema_version": SCHEMA_VERSION,
        "sample_rate": sample_rate,
        "classes": classes,
        "examples": sum(e["examples"] for e in entries),
        "total_seconds": round(sum(e["seconds"] for e in entries), 3),
        "per_class": per_class,
        "per_fold": per_fold,
        "shards": entries,
        "skipped": skipped + [s for e in entries for s in e["skipped"]],
        "config": config or {},
    }


def read_manifest(shard_dir: str) -> dict:
    """The manifest of a shard set; refuses a missing one or an unknown schema version."""
    path = join(shard_dir, MANIFEST)
    if not io.exists(path):
        raise DataError(f"{path}: no shard manifest (run `birdtpu shard` first)")
    manifest = io.read_json(path)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(f"{path}: shard schema version {version!r} is not supported "
                        f"(this birdtpu reads version {SCHEMA_VERSION}); rebuild the shards")
    return manifest


def shard_paths(shard_dir: str, manifest: dict, folds: list[int] | None = None,
                exclude: list[int] | None = None) -> list[str]:
    """Paths of the shards in `folds` (all when None) minus `exclude`; each must exist."""
    paths = []
    for e in manifest["shards"]:
        if (folds is None or e["fold"] in folds) and e["fold"] not in (exclude or []) and e["examples"]:
            path = join(shard_dir, e["file"])
            if not io.exists(path):
                raise DataError(f"{path}: shard listed in the manifest is missing; rerun `birdtpu shard`")
            paths.append(path)
    return paths

