"""`birdtpu embed`: every window of the catalog's recordings (or the soundscapes) through a
teacher, written as TFRecord shards of embeddings and logits with their provenance.

Each recording is decoded at the teacher's rate (`embed.max_seconds` of it, 0: all), cut into
windows of `embed.window_seconds` (0: the teacher's) every `embed.hop_seconds` (`windows.windows`,
the last zero-padded) and each window embedded (`window_embeddings`). A record holds
`embedding` (d floats), `logits` (the teacher's classes; empty with `embed.logits` false),
`target` (the recipe's classes, as the catalog gives them; empty for soundscapes), `label` (the
primary label's index, -1 for soundscapes), `fold` (the catalog's, -1 for soundscapes), `id`
(`<recording stem>_<end second>`), `recording` (the catalog's filename, or the file name) and
`start` (seconds).

Shards `embed-<nnnnn>.tfrec` of `embed.files_per_shard` recordings go to `embed_dir(cfg)`. A
shard is written under a temporary name and renamed, then its sidecar with the fingerprint of
its inputs (files and sizes, folds, targets, the teacher's sha256, the settings); a rerun keeps
each shard whose sidecar matches and writes only the rest. The teacher runs on batches of
`embed.batch_size` windows in shard order, the last one zero-padded, so the same inputs give the
same bytes. Recordings that cannot be decoded are skipped, named and counted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os

import numpy as np

from birdtpu import fs, rowid
from birdtpu.data.audio import AudioError
from birdtpu.data.shards.tfrecord import (
    bytes_feature,
    encode_example,
    float_feature,
    int64_feature,
)
from birdtpu.data.shards.write import finished_entries, remove_temporaries, shard_writer
from birdtpu.errors import DataError
from birdtpu.fs import join
from birdtpu.infer.recordings import decode, list_recordings
from birdtpu.infer.windows import windows
from birdtpu.progress import Progress
from birdtpu.teachers import load_teacher, provenance, slug

MANIFEST = "manifest.json"
SCHEMA = "birdtpu-embeddings-1"
NO_SPACE = (
    "free space or choose another embed.output_dir; finished shards are kept, rerun to resume"
)


def embed_dir(cfg) -> str:
    """Where the embeddings of `cfg` go: embed.output_dir, else
    <output_dir>/embeddings/<teacher>-<source>."""
    e = cfg.embed
    return e.output_dir or join(cfg.output_dir, "embeddings", f"{slug(e.teacher)}-{e.source}")


def chunk_starts(length: int, size: int) -> np.ndarray:
    """Starts of the fewest `size`-sample teacher windows spread evenly over `length` samples
    (one at 0 where `length` <= `size`)."""
    k = max(1, math.ceil(length / size))
    return np.round(np.linspace(0, max(length - size, 0), k)).astype(np.int64)


class Batches:
    """Teacher windows in, (embedding, logits) rows out in the same order, run `size` at a time
    (the last batch of a `flush` zero-padded to `size`)."""

    def __init__(self, teacher, size: int):
        self.teacher, self.size = teacher, size
        self.pending: list[np.ndarray] = []
        self.waiting = 0
        self.emb: list[np.ndarray] = []
        self.logits: list[np.ndarray] = []
        self.ready = 0

    def add(self, chunks: np.ndarray) -> None:
        self.pending.append(chunks)
        self.waiting += len(chunks)
        while self.waiting >= self.size:
            self._run(self.size)

    def flush(self) -> None:
        if self.waiting:
            self._run(self.waiting)

    def _run(self, n: int) -> None:
        x = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        batch, rest = x[:n], x[n:]
        if n < self.size:
            batch = np.concatenate([batch, np.zeros((self.size - n, x.shape[1]), np.float32)])
        emb, logits = self.teacher.embed(batch)
        self.emb.append(emb[:n])
        self.logits.append(logits[:n])
        self.ready += n
        self.pending, self.waiting = ([rest] if len(rest) else []), len(rest)

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The next `n` rows (they must be ready)."""
        emb, logits = np.concatenate(self.emb), np.concatenate(self.logits)
        self.emb, self.logits, self.ready = [emb[n:]], [logits[n:]], self.ready - n
        return emb[:n], logits[:n]


def teacher_chunks(teacher, windows_: np.ndarray) -> tuple[np.ndarray, int]:
    """((n * k, teacher samples) windows, k): each window as k teacher windows across it."""
    size, length = teacher.samples, windows_.shape[1]
    if length <= size:
        return np.pad(windows_, ((0, 0), (0, size - length))).astype(np.float32), 1
    starts = chunk_starts(length, size)
    idx = starts[:, None] + np.arange(size)[None, :]
    return np.ascontiguousarray(windows_[:, idx].reshape(-1, size), np.float32), len(starts)


def pool(emb: np.ndarray, logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k teacher rows per window -> one: the mean embedding and the max logit."""
    if k == 1:
        return emb, logits
    return (
        emb.reshape(-1, k, emb.shape[1]).mean(axis=1, dtype=np.float64).astype(np.float32),
        logits.reshape(-1, k, logits.shape[1]).max(axis=1),
    )


def window_embeddings(teacher, windows_: np.ndarray, batch_size: int):
    """(embeddings, logits) of (n, samples) windows at the teacher's rate (see `teacher_chunks`
    and `pool`), run in batches of `batch_size`, the last zero-padded."""
    chunks, k = teacher_chunks(teacher, windows_)
    batches = Batches(teacher, batch_size)
    batches.add(chunks)
    batches.flush()
    return pool(*batches.take(len(chunks)), k)


def _inputs(cfg, log) -> tuple[list[dict], list[str], str]:
    """(recordings to embed, the recipe's classes, where they come from)."""
    if cfg.embed.source == "soundscapes":
        folder = cfg.data.soundscape_dir
        if not (fs.is_remote(folder) or os.path.isabs(folder)):
            folder = join(cfg.data.root, folder)
        paths = list_recordings(folder)
        if not paths:
            raise DataError(f"{folder}: no recordings to embed")
        empty = np.zeros(0, np.float32)
        items = [
            {"path": p, "name": os.path.basename(p), "fold": -1, "label": -1, "target": empty}
            for p in paths
        ]
        return items, [], folder
    from birdtpu.data.catalog import targets
    from birdtpu.data.prepare import ensure_dataset, load_catalog

    ensure_dataset(cfg, log)
    df, classes = load_catalog(cfg, log)
    y = targets(df, classes, cfg.data.secondary_weight)
    index = {c: i for i, c in enumerate(classes)}
    items = [
        {
            "path": str(path),
            "name": str(name),
            "fold": int(fold),
            "label": index.get(label, -1),
            "target": y[i],
        }
        for i, (path, name, fold, label) in enumerate(
            zip(df["filepath"], df["filename"], df["fold"], df["label"])
        )
    ]
    return items, classes, cfg.data.table or join(cfg.data.root, cfg.data.metadata)


def _settings(cfg, teacher) -> dict:
    e = cfg.embed
    return {
        "schema": SCHEMA,
        "teacher_sha256": teacher.sha256(),
        "teacher": teacher.name,
        "window_seconds": e.window_seconds or teacher.window_seconds,
        "hop_seconds": e.hop_seconds or e.window_seconds or teacher.window_seconds,
        "max_seconds": e.max_seconds,
        "batch_size": e.batch_size,
        "logits": e.logits,
    }


def _plans(items: list[dict], per_shard: int, base: dict) -> list[dict]:
    plans = []
    for i in range(0, len(items), per_shard):
        files = items[i : i + per_shard]
        inputs = [
            [f["name"], fs.size(f["path"]) if fs.exists(f["path"]) else -1, f["fold"], f["label"]]
            + [round(float(v), 6) for v in f["target"]]
            for f in files
        ]
        blob = json.dumps([i // per_shard, inputs, base], sort_keys=True).encode()
        plans.append(
            {
                "name": f"embed-{i // per_shard:05d}.tfrec",
                "files": files,
                "fingerprint": hashlib.sha256(blob).hexdigest(),
            }
        )
    return plans


def _record(emb, logits, item: dict, rid: str, start: float) -> bytes:
    return encode_example(
        {
            "embedding": float_feature(emb),
            "logits": float_feature(logits),
            "target": float_feature(item["target"]),
            "label": int64_feature([item["label"]]),
            "fold": int64_feature([item["fold"]]),
            "id": bytes_feature([rid.encode()]),
            "recording": bytes_feature([item["name"].encode()]),
            "start": float_feature([start]),
        }
    )


def _write_shard(plan: dict, out: str, teacher, settings: dict, keep_logits: bool, progress):
    window, hop = settings["window_seconds"], settings["hop_seconds"]
    rate, max_seconds = teacher.sample_rate, settings["max_seconds"]
    batches = Batches(teacher, settings["batch_size"])
    queue: list[tuple] = []  # (item, row ids, starts, k) waiting for their rows
    skipped, examples, recordings = [], 0, 0
    path = join(out, plan["name"])

    def write_ready(writer, final: bool = False):
        nonlocal examples
        while queue and (final or batches.ready >= len(queue[0][1]) * queue[0][3]):
            item, ids, starts, k = queue.pop(0)
            emb, logits = pool(*batches.take(len(ids) * k), k)
            for j, rid in enumerate(ids):
                writer.write(
                    _record(emb[j], logits[j] if keep_logits else (), item, rid, starts[j])
                )
            examples += len(ids)

    with shard_writer(path, "", NO_SPACE) as writer:
        for item in plan["files"]:
            try:
                wave = decode(item["path"], [rate])[rate]
            except AudioError as err:
                skipped.append({"file": item["path"], "reason": err.reason})
                progress.advance(1)
                continue
            if max_seconds:
                wave = wave[: int(round(max_seconds * rate))]
            wave[~np.isfinite(wave)] = 0.0
            cut, ends = windows(wave, rate, window, hop)
            chunks, k = teacher_chunks(teacher, cut)
            stem = os.path.splitext(os.path.basename(item["name"]))[0]
            starts = [round(e - window, 6) for e in ends]
            queue.append((item, rowid.row_ids(stem, ends), starts, k))
            batches.add(chunks)
            write_ready(writer)
            recordings += 1
            progress.advance(1, len(wave) / rate)
        batches.flush()
        write_ready(writer, final=True)
    entry = {
        "file": plan["name"],
        "examples": examples,
        "recordings": recordings,
        "bytes": writer.bytes,
        "sha256": writer.sha256,
        "folds": sorted({f["fold"] for f in plan["files"]}),
        "skipped": skipped,
        "fingerprint": plan["fingerprint"],
    }
    fs.write_json(path + ".json", entry)
    return entry


def write_embeddings(cfg, log=print, tty: bool | None = None) -> dict:
    """Embed the recordings of `cfg` (see the module docstring); returns the manifest (with
    `written`: the shards this call wrote, and `dir`)."""
    items, classes, where = _inputs(cfg, log)
    teacher = load_teacher(cfg.embed.teacher, cfg.embed.threads)
    settings = _settings(cfg, teacher)
    out = embed_dir(cfg)
    plans = _plans(items, cfg.embed.files_per_shard, {**settings, "classes": classes})
    fs.makedirs(out)
    remove_temporaries(out)
    entries = finished_entries(out, [(p["name"], p["fingerprint"]) for p in plans], "embed", log)
    todo = [p for p in plans if entries[p["name"]] is None]
    total = sum(len(p["files"]) for p in todo)
    with Progress(total, log, tty=tty, name="embed", unit="recordings") as progress:
        for plan in todo:
            entries[plan["name"]] = _write_shard(
                plan, out, teacher, settings, cfg.embed.logits, progress
            )
    shards = [entries[p["name"]] for p in plans]
    skipped = [s for e in shards for s in e["skipped"]]
    manifest = {
        "schema": SCHEMA,
        "teacher": provenance(teacher),
        "source": cfg.embed.source,
        "inputs_from": where,
        "classes": classes,
        "dim": teacher.dim,
        "logits": len(teacher.classes) if cfg.embed.logits else 0,
        "window_seconds": settings["window_seconds"],
        "hop_seconds": settings["hop_seconds"],
        "max_seconds": settings["max_seconds"],
        "batch_size": settings["batch_size"],
        "inputs": len(items),
        "recordings": sum(e["recordings"] for e in shards),
        "examples": sum(e["examples"] for e in shards),
        "shards": shards,
        "skipped": skipped,
    }
    fs.write_json(join(out, MANIFEST), manifest)
    for s in skipped:
        log(f"embed: skip {s['file']}: {s['reason']}")
    log(
        f"embed: {manifest['examples']} windows of {manifest['recordings']} recordings in "
        f"{len(plans)} shards ({len(todo)} written), {len(skipped)} skipped -> {out}"
    )
    return {**manifest, "written": [p["name"] for p in todo], "dir": out}


def read_manifest(folder: str) -> dict:
    """The manifest of an embedding set; DataError where there is none."""
    path = join(folder, MANIFEST)
    if not fs.exists(path):
        raise DataError(f"{path}: no embeddings there (run `birdtpu embed` first)")
    manifest = fs.read_json(path)
    if manifest.get("schema") != SCHEMA:
        raise DataError(f"{path}: not a birdtpu embedding set (schema {manifest.get('schema')!r})")
    return manifest


def read_embeddings(folder: str, manifest: dict | None = None) -> dict:
    """Every record of an embedding set as arrays: embedding (n, d), logits (n, C), target
    (n, classes), label, fold, start (n,) and id, recording (lists), in shard order."""
    import tensorflow as tf

    manifest = manifest or read_manifest(folder)
    c, n_classes = manifest["logits"], len(manifest["classes"])
    spec = {
        "embedding": tf.io.FixedLenFeature([manifest["dim"]], tf.float32),
        "logits": tf.io.FixedLenFeature([c], tf.float32),
        "target": tf.io.FixedLenFeature([n_classes], tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "fold": tf.io.FixedLenFeature([], tf.int64),
        "start": tf.io.FixedLenFeature([], tf.float32),
        "id": tf.io.FixedLenFeature([], tf.string),
        "recording": tf.io.FixedLenFeature([], tf.string),
    }
    paths = []
    for e in manifest["shards"]:
        path = join(folder, e["file"])
        if not fs.exists(path):
            raise DataError(f"{path}: listed in the manifest but missing; rerun `birdtpu embed`")
        if e["examples"]:
            paths.append(path)
    parts: dict[str, list] = {k: [] for k in spec}
    if paths:
        ds = tf.data.TFRecordDataset(paths).batch(4096)
        for batch in ds.map(lambda x: tf.io.parse_example(x, spec)):
            for k in spec:
                parts[k].append(batch[k].numpy())
    out = {
        k: np.concatenate(v) if v else np.zeros((0, *spec[k].shape), np.float32)
        for k, v in parts.items()
    }
    out["id"] = [b.decode() for b in out["id"]]
    out["recording"] = [b.decode() for b in out["recording"]]
    return out
