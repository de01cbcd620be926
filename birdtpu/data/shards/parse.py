"""Parsing shard records in tf.data (schema version 2, tfrecords/README.md).

`parse_header` skips the audio bytes and `pcm_window` reads only a window of them, so a training
crop decodes only its own samples.
"""

from __future__ import annotations

import tensorflow as tf


def parse_example(serialized, num_classes: int) -> dict:
    """A record (schema version 2, tfrecords/README.md) as float32 audio in [-1, 1] and its fields."""
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
    ex = tf.io.parse_single_example(serialized, _field_spec(num_classes))
    ex["record"] = serialized
    ex["pcm_at"] = _pcm_offset(serialized, 2 * ex["num_samples"])
    return ex


def pcm_window(header: dict, start, length: int):
    """int16 samples [start, start + length) of a `parse_header` record (fewer at its end), read
    from its bytes at `pcm_at`, or by a full parse where the layout was not found."""
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
    return 1 + tf.cast(tf.raw_ops.Bucketize(input=x, boundaries=_VARINT_BOUNDS), tf.int64)


def _pcm_offset(serialized, num_bytes):
    """Where the `audio` bytes start in a record written by `serialize_example`, or -1.

    Deterministic serialization puts the features in key order, so `audio` is the first entry:
    Example{features{feature{key "audio", value{bytes_list{value: <num_bytes bytes>}}}, ...}}. The
    offset follows from the lengths; the key and the bytes' length prefix are checked at the
    positions found, so a record laid out otherwise (another writer) gets -1 and a full parse.
    Few, small ops: this runs once per record in the input pipeline.
    """
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
