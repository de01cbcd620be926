"""TFRecord shards of int16 PCM, decoded once on the host, with a manifest (schema: tfrecords/README.md).

A build reads the catalog's rows, plans shards per fold to a target size from the file headers
(and cuts long recordings into windows by `shards.crop`), then decodes and writes each shard,
in worker processes, under a temporary name that is renamed when the shard is complete. A
sidecar JSON with the shard's counts, checksum and the fingerprint of its plan follows; a shard
whose sidecar matches its plan is done, so a killed build rerun writes only the rest.
`manifest.json` is written last. Same catalog, settings and seed give byte-identical shards,
whatever the number of workers or the runner (local processes or Apache Beam). Building imports
no TensorFlow (except for `gs://` paths, through `tf.io.gfile`); parsing does.

| module     | holds                                                                |
|------------|----------------------------------------------------------------------|
| `records`  | the record and its fields, serialized (no TensorFlow)                |
| `tfrecord` | `tf.train.Example` encoding and TFRecord files (no TensorFlow)       |
| `parse`    | parsing records in tf.data, reading a window of their PCM            |
| `plan`     | catalog rows checked, windows cut, rows grouped into shard plans      |
| `write`    | one shard: decoded, written, fsynced, renamed, its sidecar            |
| `build`    | a set: planned, resumed, written in processes or on Beam, manifest    |
| `beam`     | the same build as an Apache Beam pipeline (`shard --runner beam`)     |
| `manifest` | reading the manifest, checking its shards, shard paths by fold        |
| `skips`    | a set that skipped too much of its input (or wrote nothing) refused   |
"""

from birdtpu.data.shards.build import build_shards
from birdtpu.data.shards.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    check_shards,
    read_manifest,
    shard_paths,
)
from birdtpu.data.shards.plan import catalog_rows, crop_windows, plan_shards
from birdtpu.data.shards.records import serialize_example, to_pcm16
from birdtpu.data.shards.skips import check_skipped
from birdtpu.data.shards.write import write_shard

_PARSE = ("parse_example", "parse_header", "pcm_window")


def __getattr__(name: str):
    """The parse side, imported (with TensorFlow) when first used: building shards needs neither."""
    if name in _PARSE:
        from birdtpu.data.shards import parse

        return getattr(parse, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MANIFEST",
    "SCHEMA_VERSION",
    "build_shards",
    "catalog_rows",
    "check_shards",
    "check_skipped",
    "crop_windows",
    "parse_example",
    "parse_header",
    "pcm_window",
    "plan_shards",
    "read_manifest",
    "serialize_example",
    "shard_paths",
    "to_pcm16",
    "write_shard",
]
