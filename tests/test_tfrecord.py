"""The TensorFlow-free record encoder and TFRecord writer give TensorFlow's bytes, and building
shards imports no TensorFlow, in the parent or in its worker processes."""

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from birdtpu.data.shards.records import serialize_example
from birdtpu.data.shards.tfrecord import (
    RecordWriter,
    bytes_feature,
    encode_example,
    float_feature,
    int64_feature,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_KINDS = {
    "bytes": (st.binary(max_size=40), bytes_feature, "bytes_list"),
    "float": (st.floats(width=32, allow_nan=False), float_feature, "float_list"),
    "int64": (st.integers(-(2**63), 2**63 - 1), int64_feature, "int64_list"),
}


def _tf_example(features: dict) -> bytes:
    feats = {}
    for key, (kind, values) in features.items():
        proto = {
            "bytes": tf.train.BytesList,
            "float": tf.train.FloatList,
            "int64": tf.train.Int64List,
        }[kind](value=values)
        feats[key] = tf.train.Feature(**{_KINDS[kind][2]: proto})
    example = tf.train.Example(features=tf.train.Features(feature=feats))
    return example.SerializeToString(deterministic=True)


@st.composite
def _features(draw):
    keys = draw(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6, unique=True))
    out = {}
    for key in keys:
        kind = draw(st.sampled_from(sorted(_KINDS)))
        out[key] = (kind, draw(st.lists(_KINDS[kind][0], max_size=5)))
    return out


@settings(max_examples=200, deadline=None)
@given(_features())
@example({"a": ("int64", [1]), "ab": ("bytes", [b""]), "b": ("float", []), "0": ("int64", [-1])})
def test_encode_example_equals_tensorflow(features):
    """Any features, prefix keys included (protobuf puts 'ab' before 'a')."""
    ours = encode_example({k: _KINDS[kind][1](v) for k, (kind, v) in features.items()})
    assert ours == _tf_example(features)


def test_serialize_example_equals_tensorflow_and_parses():
    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32767, 80_000, dtype=np.int16)
    target = rng.random(7).astype(np.float32)
    ours = serialize_example(
        pcm, 32000, target, 3, -1, "xc1.ogg", "xc", 2.5, 0.5, (0.1, 1.2, 500.0, 8000.0), False
    )
    features = {
        "audio": ("bytes", [pcm.astype("<i2").tobytes()]),
        "num_samples": ("int64", [len(pcm)]),
        "sample_rate": ("int64", [32000]),
        "target": ("float", list(target)),
        "label": ("int64", [3]),
        "fold": ("int64", [-1]),
        "id": ("bytes", [b"xc1.ogg"]),
        "source": ("bytes", [b"xc"]),
        "duration": ("float", [2.5]),
        "offset": ("float", [0.5]),
        "box": ("float", [0.1, 1.2, 500.0, 8000.0]),
        "has_box": ("int64", [1]),
        "positive": ("int64", [0]),
    }
    assert ours == _tf_example(features)
    from birdtpu.data.shards import parse_example

    parsed = parse_example(ours, 7)
    np.testing.assert_array_equal(parsed["target"].numpy(), target)
    np.testing.assert_allclose(parsed["audio"].numpy(), pcm / 32767.0, rtol=1e-6)
    assert int(parsed["fold"]) == -1


def _records(n: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    return [rng.bytes(int(rng.integers(0, 3000))) for _ in range(n)] + [b""]


def test_record_writer_equals_tensorflow_writer(tmp_path):
    records = _records(20)
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecord")) as writer:
        for r in records:
            writer.write(r)
    with RecordWriter(str(tmp_path / "ours.tfrecord")) as ours:
        for r in records:
            ours.write(r)
    data = (tmp_path / "ours.tfrecord").read_bytes()
    assert data == (tmp_path / "tf.tfrecord").read_bytes()
    assert ours.bytes == len(data)
    assert ours.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("compression", ["GZIP", "ZLIB"])
def test_compressed_files_read_back_in_tensorflow(tmp_path, compression):
    records = _records(30)
    path = str(tmp_path / "x.tfrecord")
    with RecordWriter(path, compression) as ours:
        for r in records:
            ours.write(r)
    data = open(path, "rb").read()
    assert (ours.bytes, ours.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    back = [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type=compression)]
    assert back == records


def test_unknown_compression_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compression 'LZ4'"):
        RecordWriter(str(tmp_path / "x"), "LZ4")


@pytest.mark.slow
def test_building_shards_imports_no_tensorflow(tmp_path):
    """A `tensorflow` that cannot be imported is first on the path of the build and of its 2
    spawned workers (they inherit PYTHONPATH): the build must not need it."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "tensorflow.py").write_text("raise ImportError('tensorflow is blocked')\n")
    script = textwrap.dedent(
        f"""
        import os, sys
        import pandas as pd
        from birdtpu.config import ShardConfig, SynthConfig
        from birdtpu.data.shards import build_shards
        from birdtpu.data.synth import write_dataset

        root = {str(tmp_path / "data")!r}
        meta = write_dataset(root, SynthConfig(num_species=3, clips_per_species=4,
                             num_soundscapes=0), log=lambda *_: None)
        df = pd.DataFrame({{
            "filepath": [os.path.join(root, "train_audio", f) for f in meta["filename"]],
            "filename": meta["filename"], "label": meta["primary_label"],
            "labels": [[x] for x in meta["primary_label"]], "source": "synth",
            "fold": [i % 2 for i in range(len(meta))]}})
        classes = sorted(df["label"].unique())
        m = build_shards(df, classes, {str(tmp_path / "shards")!r}, 32000,
                         ShardConfig(target_mb=0.2, workers=2), log=lambda *_: None)
        assert len(m["shards"]) > 1 and m["examples"] == len(df), m
        assert "tensorflow" not in sys.modules
        print("ok", m["examples"])
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")
