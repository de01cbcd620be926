"""TFRecord files and `tf.train.Example` records written without TensorFlow.

A shard worker decodes audio and writes records; importing TensorFlow for that costs each worker
seconds of start-up and hundreds of MB. The two formats are small and stable:

- a record (`encode_example`) is the protobuf wire encoding of `tf.train.Example` with its
  features in deterministic key order, the bytes `SerializeToString(deterministic=True)` gives
  (tests compare the two);
- a file (`RecordWriter`) frames each record as TensorFlow does: length (uint64 LE), masked CRC32C
  of the length, the record, masked CRC32C of the record. GZIP and ZLIB files are the framed stream
  through zlib (what `TFRecordDataset(compression_type=...)` reads).

`RecordWriter` computes the file's sha256 and size as it writes and fsyncs once, on close.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import zlib

import google_crc32c
import numpy as np

from birdtpu import fs

_MASK_DELTA = 0xA282EAD8
_WBITS = {"GZIP": 16 + zlib.MAX_WBITS, "ZLIB": zlib.MAX_WBITS}
COMPRESSIONS = ("", "GZIP", "ZLIB")


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C of `data`."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One record as it lies in a TFRecord file."""
    length = struct.pack("<Q", len(record))
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc32c(length)),
            record,
            struct.pack("<I", masked_crc32c(record)),
        )
    )


# ----------------------------------------------------------------------------- tf.train.Example


def _varint(value: int) -> bytes:
    value &= 0xFFFFFFFFFFFFFFFF  # negative int64: ten bytes of two's complement, as protobuf does
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def bytes_feature(values) -> bytes:
    """A `Feature` holding a BytesList."""
    return _field(1, b"".join(_field(1, bytes(v)) for v in values))


def float_feature(values) -> bytes:
    """A `Feature` holding a FloatList (float32, packed)."""
    data = np.asarray(values, "<f4").tobytes()
    return _field(2, _field(1, data) if data else b"")


def int64_feature(values) -> bytes:
    """A `Feature` holding an Int64List (packed varints)."""
    data = b"".join(_varint(int(v)) for v in values)
    return _field(3, _field(1, data) if data else b"")


def _key_order(a: bytes, b: bytes) -> int:
    """The map-key order of protobuf's deterministic serialization (upb): bytewise, except that a
    key that is a prefix of another comes after it ('ab' before 'a')."""
    n = min(len(a), len(b))
    return (a[:n] > b[:n]) - (a[:n] < b[:n]) or len(b) - len(a)


def encode_example(features: dict[str, bytes]) -> bytes:
    """A `tf.train.Example` of `{key: *_feature(...)}`, features in deterministic key order."""
    keys = sorted((k.encode() for k in features), key=functools.cmp_to_key(_key_order))
    return _field(
        1,
        b"".join(_field(1, _field(1, key) + _field(2, features[key.decode()])) for key in keys),
    )


# ----------------------------------------------------------------------------- files


class RecordWriter:
    """Write framed records to `path` (local or remote), optionally GZIP/ZLIB-compressed.

    `sha256` and `bytes` describe the file as written; `close()` flushes and, for a local file,
    fsyncs it. A context manager; on an error the file is closed unsynced, not removed (the
    caller owns it).
    """

    def __init__(self, path: str, compression: str = ""):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r}: expected one of {COMPRESSIONS}")
        self.path = path
        self._file = fs.open(path, "wb")
        self._zip = (
            zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, _WBITS[compression])
            if compression
            else None
        )
        self._sha = hashlib.sha256()
        self.bytes = 0

    def _put(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self._sha.update(data)
            self.bytes += len(data)

    def write(self, record: bytes) -> None:
        framed = frame(record)
        self._put(self._zip.compress(framed) if self._zip else framed)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def close(self, sync: bool = True) -> None:
        """Flush and close; with `sync`, fsync a local file first."""
        if self._file is None:
            return
        try:
            if self._zip:
                self._put(self._zip.flush())
            self._file.flush()
            if sync and not fs.is_remote(self.path):
                os.fsync(self._file.fileno())
        finally:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        self.close(sync=kind is None)
