"""The shard record: int16 PCM plus its fields, serialized (schema: tfrecords/README.md).

Written without TensorFlow (`tfrecord.encode_example`), so shard workers stay light; the
TensorFlow side, parsing in the input pipeline, is `parse`.
"""

from __future__ import annotations

import numpy as np

from birdtpu.data.shards.tfrecord import bytes_feature, encode_example, float_feature, int64_feature

NO_BOX = (-1.0, -1.0, -1.0, -1.0)


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
    feats = {
        "audio": bytes_feature([pcm.astype("<i2").tobytes()]),
        "num_samples": int64_feature([len(pcm)]),
        "sample_rate": int64_feature([sample_rate]),
        "target": float_feature(target),
        "label": int64_feature([label]),
        "fold": int64_feature([fold]),
        "id": bytes_feature([clip_id.encode()]),
        "source": bytes_feature([source.encode()]),
        "duration": float_feature([duration]),
        "offset": float_feature([offset]),
        "box": float_feature(NO_BOX if box is None else box),
        "has_box": int64_feature([box is not None]),
        "positive": int64_feature([bool(positive)]),
    }
    return encode_example(feats)


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as int16 (clipped, rounded half to even), in one scratch array."""
    scaled = np.clip(wave, -1.0, 1.0)
    scaled *= 32767.0
    return np.rint(scaled, out=scaled).astype(np.int16)
