"""Distillation of a teacher's embeddings (issue 23): one L2-normalised mean vector per
recording from `birdtpu embed` sets, looked up by clip id in tf.data, and a cosine loss between
a projection of the student's pooled features and it, added to the fit loss under both backends."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from birdtpu import fs, rowid, saving
from birdtpu.data.crops import embedding_lookup
from birdtpu.data.shards.write import shard_writer
from birdtpu.errors import ConfigError, DataError
from birdtpu.teachers.embed import MANIFEST, SCHEMA, _record
from birdtpu.train.projection import EmbeddingDistiller, cosine_distillation_loss
from birdtpu.train.teacher_embeddings import read_teacher_embeddings, training_embeddings

SAMPLES, DIM, CLASSES = 64, 5, 3


def write_set(folder, shards: list[list[tuple[str, np.ndarray]]], dim: int = DIM) -> str:
    """An embedding set as `birdtpu embed` writes it: shards of (catalog filename, (windows, d)
    embeddings) with their manifest."""
    os.makedirs(folder, exist_ok=True)
    entries = []
    for k, recordings in enumerate(shards):
        name, examples = f"embed-{k:05d}.tfrec", 0
        with shard_writer(os.path.join(folder, name)) as writer:
            for filename, emb in recordings:
                stem = os.path.splitext(os.path.basename(filename))[0]
                ends = 5.0 * np.arange(1, len(emb) + 1)
                item = {"name": filename, "target": [1.0, 0.0], "label": 0, "fold": 0}
                for rid, e, end in zip(rowid.row_ids(stem, ends), emb, ends):
                    writer.write(_record(e, (), item, rid, end - 5.0))
                examples += len(emb)
        entries.append({"file": name, "examples": examples})
    manifest = {"schema": SCHEMA, "dim": dim, "logits": 0, "classes": ["a", "b"]}
    fs.write_json(os.path.join(folder, MANIFEST), {**manifest, "shards": entries})
    return str(folder)


def unit(v):
    return v / np.linalg.norm(v)


def test_reader_averages_windows_per_recording_and_lookup_in_tf_data(tmp_path):
    a = np.array([[1.0, 2, 0, 0, 0], [3, 0, 0, 0, 4]], np.float32)
    b = np.array([[0.0, 0, 2, 0, 0]], np.float32)
    c = np.array([[1.0, 1, 1, 1, 1], [-1, -1, -1, -1, -1]], np.float32)  # mean 0: stays zero
    folder = write_set(
        tmp_path / "set", [[("sp1/XC1.ogg", a), ("sp2/XC2.ogg", b)], [("sp1/XC3.ogg", c)]]
    )
    lines = []
    ids, vectors = read_teacher_embeddings(folder, log=lines.append)
    assert ids == ["sp1/XC1.ogg", "sp1/XC3.ogg", "sp2/XC2.ogg"] and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[0], unit(np.array([2.0, 1, 0, 0, 2])), rtol=1e-6)
    np.testing.assert_array_equal(vectors[1], np.zeros(DIM))
    np.testing.assert_array_equal(vectors[2], [0, 0, 1, 0, 0])
    assert lines == [f"teacher embeddings: 3 recordings (5 windows, 5 dims) from {folder}"]

    lookup = embedding_lookup(ids, vectors)
    clips = tf.data.Dataset.from_tensor_slices(["sp2/XC2.ogg", "nosuch.ogg", "sp1/XC1.ogg"])
    got = np.stack([v.numpy() for v in clips.map(lookup)])
    np.testing.assert_allclose(got, [vectors[2], np.zeros(DIM), vectors[0]])
    batched = next(iter(clips.batch(3).map(lookup))).numpy()
    np.testing.assert_allclose(batched, got)

    out = []
    assert training_embeddings(folder, ["sp1/XC1.ogg", "x.ogg"], log=out.append)[0] == ids
    assert out == [
        "fit: teacher embeddings (5 dims) for 1 of 2 training clips; the others add no "
        "distillation loss"
    ]
    with pytest.raises(DataError, match=r"none of the 1 training clips .*'other.ogg'"):
        training_embeddings(folder, ["other.ogg"])


def test_reader_errors_name_the_set_or_shard(tmp_path):
    one = np.ones((1, DIM), np.float32)
    with pytest.raises(DataError, match=r"nothing/manifest.json: no embeddings there"):
        read_teacher_embeddings(str(tmp_path / "nothing"))
    empty = write_set(tmp_path / "empty", [[]])
    with pytest.raises(DataError, match=r"empty: the embedding set holds no windows"):
        read_teacher_embeddings(empty)
    good = write_set(tmp_path / "good", [[("a.ogg", one)]])
    wide = write_set(tmp_path / "wide", [[("b.ogg", np.ones((1, 7), np.float32))]], dim=7)
    with pytest.raises(DataError, match=r"wide: embeddings of 7 dims, .*good has 5"):
        read_teacher_embeddings([good, wide])
    bad = write_set(tmp_path / "bad", [[("a.ogg", one)], [("b.ogg", np.ones((1, 4), np.float32))]])
    with pytest.raises(DataError, match=r"bad/embed-00001.tfrec: a record's embedding"):
        read_teacher_embeddings(bad)
    nan = write_set(tmp_path / "nan", [[("c.ogg", np.full((1, DIM), np.nan, np.float32))]])
    with pytest.raises(DataError, match=r"nan: window 'c_5' has a non-finite embedding"):
        read_teacher_embeddings(nan)
    twice = write_set(tmp_path / "twice", [[("a.ogg", one)]])
    with pytest.raises(DataError, match=r"twice: recording 'a.ogg' is also in .*good"):
        read_teacher_embeddings([good, twice])


@pytest.mark.backends
def test_cosine_loss_by_hand_ignores_zero_teacher_rows():
    p = np.array([[1.0, 0, 0], [1, 1, 0], [3, 4, 0], [2, 2, 2]], np.float32)
    t = np.array([[0.0, 1, 0], [2, 2, 0], [3, 0, 0], [0, 0, 0]], np.float32)
    # cosines 0, 1, 3/5; the last row has no teacher vector
    expected = ((1 - 0) + (1 - 1) + (1 - 0.6)) / 3
    got = keras.ops.convert_to_numpy(cosine_distillation_loss(p, t))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    none = cosine_distillation_loss(p, np.zeros_like(t))
    assert float(keras.ops.convert_to_numpy(none)) == 0.0


def student(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    wave = keras.Input((SAMPLES,), name="waveform")
    x = keras.layers.Reshape((8, 8))(wave)
    x = keras.layers.Dense(6, activation="relu", name="frames")(x)
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    out = keras.layers.Dense(CLASSES, activation="sigmoid", name="probabilities")(x)
    return keras.Model(wave, out, name="tiny_student")


def batch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, SAMPLES)).astype(np.float32)
    t = rng.standard_normal((6, DIM)).astype(np.float32)
    t[4] = 0.0  # a clip without a teacher vector
    y = (rng.random((6, CLASSES)) > 0.5).astype(np.float32)
    return x, t, y


def dataset(x, t, y, batch_size=6):
    inputs = {"waveform": x, "teacher_embedding": t}
    return tf.data.Dataset.from_tensor_slices((inputs, y)).batch(batch_size)


def distiller(weight: float, lr: float = 0.1) -> EmbeddingDistiller:
    model = EmbeddingDistiller(student(), "pool", DIM, weight=weight)
    model.compile(keras.optimizers.SGD(lr, momentum=0.9), keras.losses.BinaryCrossentropy())
    return model


def by_hand(model, x, t, y) -> tuple[float, float]:
    """(BCE, cosine term) of `model` on the batch, in float64 NumPy from its weights."""
    pooled = keras.Model(model.student.inputs, model.student.get_layer("pool").output)
    f = np.asarray(pooled.predict(x, verbose=0), np.float64)
    kernel, bias = (np.asarray(v, np.float64) for v in model.projection.get_weights())
    proj = f @ kernel + bias
    known = np.linalg.norm(t, axis=1) > 0
    cos = (proj * t).sum(1) / np.linalg.norm(proj, axis=1) / np.linalg.norm(t, axis=1).clip(1e-30)
    p = np.clip(np.asarray(model.student.predict(x, verbose=0), np.float64), 1e-7, 1 - 1e-7)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    return bce, (1 - cos[known]).mean()


@pytest.mark.slow
@pytest.mark.backends
def test_fit_adds_the_weighted_cosine_term_and_trains_the_projection():
    x, t, y = batch()
    model = distiller(weight=0.5)
    bce, cos = by_hand(model, x, t, y)
    kernel = model.projection.get_weights()[0].copy()
    first = model.fit(dataset(x, t, y), epochs=1, verbose=0).history["loss"][0]
    np.testing.assert_allclose(first, bce + 0.5 * cos, rtol=1e-5)  # the loss at the start weights
    assert np.abs(model.projection.get_weights()[0] - kernel).max() > 1e-4  # it got a gradient
    plain = distiller(weight=0.0)
    np.testing.assert_allclose(
        plain.fit(dataset(x, t, y), verbose=0).history["loss"][0], bce, rtol=1e-5
    )
    # the cosine term reaches the student too: its features move otherwise than without it
    moved = model.student.get_layer("frames").get_weights()[0]
    assert np.abs(moved - plain.student.get_layer("frames").get_weights()[0]).max() > 1e-6

    model.fit(dataset(x, t, y), epochs=10, verbose=0)
    assert by_hand(model, x, t, y)[1] < cos - 0.1
    # validation and prediction see the student alone, with or without teacher vectors
    bce_now = by_hand(model, x, t, y)[0]
    np.testing.assert_allclose(model.evaluate(dataset(x, t, y), verbose=0), bce_now, rtol=1e-5)
    plain_x = tf.data.Dataset.from_tensor_slices(({"waveform": x}, y)).batch(6)
    np.testing.assert_allclose(model.evaluate(plain_x, verbose=0), bce_now, rtol=1e-5)
    np.testing.assert_allclose(
        model.predict(x, verbose=0), model.student.predict(x, verbose=0), rtol=1e-6
    )


@pytest.mark.slow
@pytest.mark.backends
def test_distiller_saves_resumes_and_its_student_loads_in_a_fresh_process(tmp_path):
    x, t, y = batch()
    ds = dataset(x, t, y, batch_size=3)
    model = distiller(weight=0.5, lr=0.05)
    model.fit(ds, epochs=1, verbose=0)
    path = str(tmp_path / "backup.keras")
    model.save(path)
    ahead = model.fit(ds, epochs=1, verbose=0).history["loss"][0]

    loaded = saving.load_model(path)
    assert isinstance(loaded, EmbeddingDistiller) and loaded.get_config() == {
        **model.get_config(),
        "student": loaded.get_config()["student"],
    }
    assert (loaded.feature_layer, loaded.dim, loaded.weight) == ("pool", DIM, 0.5)
    resumed = EmbeddingDistiller(student(seed=7), "pool", DIM, weight=0.5)  # as fit resumes
    resumed.compile(keras.optimizers.SGD(0.05, momentum=0.9), keras.losses.BinaryCrossentropy())
    resumed.optimizer.build(resumed.trainable_variables)
    resumed.load_weights(path)
    assert int(resumed.optimizer.iterations) == 2
    np.testing.assert_allclose(
        resumed.fit(ds, epochs=1, verbose=0).history["loss"][0], ahead, rtol=1e-5
    )

    student_path = str(tmp_path / "model.keras")
    model.student.save(student_path)
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np; from birdtpu import saving; "
        "m = saving.load_model(sys.argv[1]); "
        "np.save(sys.argv[3], m.predict(np.load(sys.argv[2]), verbose=0))"
    )
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend()}
    out = tmp_path / "p.npy"
    done = subprocess.run(
        [sys.executable, "-c", code, student_path, str(tmp_path / "x.npy"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(out), model.student.predict(x, verbose=0), rtol=1e-6)


def test_distiller_rejects_a_missing_or_unpooled_feature_layer():
    with pytest.raises(ConfigError, match=r"tiny_student: no layer 'neck'"):
        EmbeddingDistiller(student(), "neck", DIM)
    with pytest.raises(ConfigError, match=r"layer 'frames' gives \(None, 8, 6\), not"):
        EmbeddingDistiller(student(), "frames", DIM)
    with pytest.raises(ConfigError, match=r"weight -1.0 must be >= 0"):
        EmbeddingDistiller(student(), "pool", DIM, weight=-1.0)


@pytest.mark.backends
def test_a_student_with_clip_inputs_gets_them_and_the_loss_only_in_training():
    keras.utils.set_random_seed(0)
    wave, seconds = keras.Input((SAMPLES,), name="waveform"), keras.Input((1,), name="clip_seconds")
    x = keras.layers.Dense(4, name="frames")(wave)
    x = keras.layers.Concatenate(name="pool")([x, seconds])
    out = keras.layers.Dense(CLASSES, activation="sigmoid")(x)
    two = keras.Model({"waveform": wave, "clip_seconds": seconds}, out)
    model = EmbeddingDistiller(two, "pool", DIM, weight=2.0)
    x, t, _ = batch()
    s = np.arange(6, dtype=np.float32)[:, None]
    inputs = {"waveform": x, "clip_seconds": s, "teacher_embedding": t}
    alone = keras.ops.convert_to_numpy(two({"waveform": x, "clip_seconds": s}))
    probs = keras.ops.convert_to_numpy(model(inputs, training=True))
    np.testing.assert_allclose(probs, alone, rtol=1e-6)
    pooled = keras.Model(two.inputs, two.get_layer("pool").output)(
        {"waveform": x, "clip_seconds": s}
    )
    expected = 2.0 * cosine_distillation_loss(model.projection(pooled), t)
    assert len(model.losses) == 1
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.losses[0]), keras.ops.convert_to_numpy(expected), rtol=1e-6
    )
    model(inputs, training=False)
    assert model.losses == []  # validation adds nothing
