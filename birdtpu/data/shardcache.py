"""The shard cache: shard sets keyed by what determines their bytes, shared by every run.

A run without `shards.dir` reads its shards from `<output_dir>/shard-cache/<key>`, where the key
hashes the schema version, the data settings that reach the shards (root, metadata, table,
format, sample rate, folds, ...), the shard settings, the seed and the content of the catalog's
metadata file. Two runs that differ in the model, the training or the class balance share one
set, and the second decodes nothing. Each set lists the runs that used it (`runs.json`);
`birdtpu shard --list` shows the cache.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import posixpath

from birdtpu import fs
from birdtpu.fs import join

SCHEMA_VERSION = 2
CACHE_DIR = "shard-cache"
USERS = "runs.json"
# data keys that do not change a shard's bytes (class balance is the training pipeline's)
NOT_IN_SHARDS = {
    "data": ("fold", "synthesize", "soundscape_dir", "min_per_class", "max_per_class"),
    "shards": ("workers", "dir", "max_skipped"),
}


def shard_settings(cfg) -> dict:
    """What a shard set depends on in the config; a manifest built with others is not reused."""
    plain = {s: dataclasses.asdict(getattr(cfg, s)) for s in NOT_IN_SHARDS}
    return {
        **{s: {k: v for k, v in d.items() if k not in NOT_IN_SHARDS[s]} for s, d in plain.items()},
        "seed": cfg.runtime.seed,
    }


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int) -> str:
    return fs.sha256(path)


def catalog_fingerprint(cfg) -> str:
    """The content of the file the catalog is read from (`data.table`, or the BirdCLEF metadata);
    for the other formats, the names and sizes of the CSV files in `data.root`."""
    d = cfg.data
    if d.table or d.format == "birdclef":
        path = d.table or join(d.root, d.metadata)
        return _file_digest(path, fs.size(path)) if fs.exists(path) else "absent"
    files = sorted(fs.glob(join(d.root, "*.csv"))) if fs.isdir(d.root) else []
    return json.dumps([(posixpath.basename(f), fs.size(f)) for f in files])


def cache_key(cfg) -> str:
    """12 hex digits naming the shard set of `cfg` in the cache."""
    blob = json.dumps(
        [SCHEMA_VERSION, shard_settings(cfg), catalog_fingerprint(cfg)], sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def default_dir(cfg) -> str:
    """`<output_dir>/shard-cache/<format>-<key>`."""
    return join(cfg.output_dir, CACHE_DIR, f"{cfg.data.format}-{cache_key(cfg)}")


def add_user(shard_dir: str, run_dir: str) -> None:
    """Record that `run_dir` trained on the set in `shard_dir`."""
    path = join(shard_dir, USERS)
    users = fs.read_json(path) if fs.exists(path) else []
    if run_dir not in users:
        fs.write_json(path, sorted([*users, run_dir]))


def cache_table(output_dir: str) -> list[dict]:
    """One row per shard set in the cache of `output_dir`: key, clips, hours, MB, runs."""
    rows = []
    for manifest_path in sorted(fs.glob(join(output_dir, CACHE_DIR, "*", "manifest.json"))):
        folder = posixpath.dirname(manifest_path)
        manifest = fs.read_json(manifest_path)
        users = join(folder, USERS)
        rows.append(
            {
                "set": posixpath.basename(folder),
                "clips": manifest["examples"],
                "hours": round(manifest["total_seconds"] / 3600, 2),
                "classes": len(manifest["classes"]),
                "mb": round(sum(e["bytes"] for e in manifest["shards"]) / 1e6, 1),
                "runs": fs.read_json(users) if fs.exists(users) else [],
            }
        )
    return rows
