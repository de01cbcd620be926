"""The manifest of a shard set: reading it, checking its shards, choosing them by fold."""

from __future__ import annotations

from birdtpu import fs
from birdtpu.data.shardcache import SCHEMA_VERSION
from birdtpu.errors import DataError
from birdtpu.fs import join

__all__ = ["SCHEMA_VERSION"]
MANIFEST = "manifest.json"


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
