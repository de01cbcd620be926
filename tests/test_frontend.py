"""The front's dB, normalisation, SpecAugment and image layers and `frontend()`, on both backends
(the mel layer itself: test_mel.py)."""

import dataclasses
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import check_layer as contract

from birdtpu.config import AugmentConfig, FrontendConfig
from birdtpu.errors import ConfigError
from birdtpu.layers.frontend import (
    MelSpectrogram,
    PowerToDb,
    SpecAugment,
    frontend,
    mel_layer_class,
)

RATE = 16000


def clip(seed=0, seconds=1.0, gain=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (
        gain * np.sin(2 * np.pi * rng.uniform(500, 4000) * t) + 0.01 * rng.standard_normal(len(t))
    ).astype(np.float32)


def check_layer(layer, inputs, tmp_path):
    """The house test of a layer under TensorFlow (test_augment.py and test_features.py use it;
    the contract of every backend is tests/helpers.py): get_config round trip, `.keras` save and
    load with the same outputs (inference, and training: random layers must be seeded, as Keras
    restores a SeedGenerator from its seed, not its state), and XLA compilation
    (`jit_compile=True`) in training and in a compiled predict. Returns the XLA training output."""
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    many = isinstance(inputs, tuple)
    args = list(inputs) if many else [inputs]
    symbolic = [keras.Input(a.shape[1:]) for a in args]
    model = keras.Model(
        symbolic if many else symbolic[0], layer(tuple(symbolic) if many else symbolic[0])
    )
    path = str(tmp_path / f"{layer.name}.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    feed = args if many else args[0]
    for a, b in zip(keras.tree.flatten(model(feed)), keras.tree.flatten(loaded(feed))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    for a, b in zip(
        keras.tree.flatten(model(feed, training=True)),
        keras.tree.flatten(loaded(feed, training=True)),
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    compiled = tf.function(lambda x: model(x, training=True), jit_compile=True)(feed)
    for a, b in zip(keras.tree.flatten(compiled), keras.tree.flatten(model(feed))):
        assert np.asarray(a).shape == np.asarray(b).shape and np.isfinite(np.asarray(a)).all()
    model.compile(jit_compile=True)
    predicted = model.predict(feed, verbose=0, batch_size=len(args[0]))
    for a, b in zip(keras.tree.flatten(predicted), keras.tree.flatten(model(feed))):
        assert np.asarray(a).shape == np.asarray(b).shape
    return compiled


@pytest.mark.backends
def test_db_floor_is_per_example():
    x = np.stack([np.full((4, 6, 1), 1e-3), np.full((4, 6, 1), 1.0)]).astype(np.float32)
    x[:, 0, 0, 0] = [1.0, 100.0]  # each clip's own peak: 0 dB and 20 dB
    db = np.asarray(PowerToDb(top_db=10.0)(x))
    np.testing.assert_allclose(db[0].min(), -10.0, atol=1e-4)  # floored at its own peak - 10
    np.testing.assert_allclose(db[1].min(), 10.0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(PowerToDb(top_db=10.0)(x[:1])), db[:1])


@pytest.mark.backends
@pytest.mark.parametrize("normalize", ["zscore_minmax", "zscore", "minmax", "none"])
def test_frontend_is_per_example(normalize):
    cfg = FrontendConfig(
        clip_seconds=1.0, n_fft=512, frames=32, n_mels=24, fmax=8000, normalize=normalize
    )
    front = frontend(cfg, RATE, AugmentConfig())
    quiet = clip(1, gain=0.01)
    batch = np.stack([quiet, clip(2, gain=0.9), clip(3, gain=0.5)])
    alone = np.asarray(front(quiet[None], training=False))[0]
    together = np.asarray(front(batch, training=False))[0]
    # equal up to float32 rounding (XLA may tile the mel matmul by batch size): values reach 700
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-3)
    assert alone.shape == (24, 32, 3)
    if normalize.endswith("minmax"):
        assert 0 <= alone.min() and alone.max() <= 255.0 + 1e-3 and alone.max() > 254
    if normalize == "zscore":
        np.testing.assert_allclose([alone.mean() / 255, alone.std() / 255], [0, 1], atol=1e-3)


@pytest.mark.backends
def test_frontend_round_trips_and_compiles(tmp_path):
    cfg = FrontendConfig(clip_seconds=1.0, n_fft=512, frames=32, n_mels=24, fmax=8000, power=1.0)
    front = frontend(cfg, RATE, AugmentConfig(freq_mask_prob=1.0, time_mask_prob=1.0), seed=5)
    batch = np.stack([clip(4), clip(5, gain=0.7)])
    model = contract(front, batch, (2, 24, 32, 3), 0, tmp_path)
    trained = keras.ops.convert_to_numpy(model(batch, training=True))
    assert (trained == 0).any()  # masks applied in training


@pytest.mark.backends
def test_the_mel_layer_follows_impl():
    cfg = FrontendConfig(clip_seconds=1.0, n_fft=512, frames=32, n_mels=24, fmax=8000)
    assert type(frontend(cfg, RATE).layers[0]) is MelSpectrogram
    with pytest.raises(ConfigError, match="frontend.impl: 'torch' is not one of keras, kapre"):
        mel_layer_class("torch")
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(ConfigError, match="kapre runs on the tensorflow backend only, not"):
            frontend(dataclasses.replace(cfg, impl="kapre"), RATE)
        return
    kapre_mel = pytest.importorskip("birdtpu.layers.kapre_mel")
    kapre = frontend(dataclasses.replace(cfg, impl="kapre"), RATE)
    assert type(kapre.layers[0]) is kapre_mel.KapreMelSpectrogram
    waves = np.stack([clip(6), clip(7, gain=0.05)])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(kapre(waves)),
        keras.ops.convert_to_numpy(frontend(cfg, RATE)(waves)),
        atol=1e-2,
    )


def test_impl_kapre_without_kapre_is_a_config_error(monkeypatch):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("impl kapre is the TensorFlow backend's")
    monkeypatch.setitem(sys.modules, "kapre", None)  # as if kapre were not installed
    monkeypatch.delitem(sys.modules, "birdtpu.layers.kapre_mel", raising=False)
    with pytest.raises(ConfigError, match="frontend.impl: kapre is not installed"):
        mel_layer_class("kapre")


@pytest.mark.backends
def test_masks_land_on_their_axis():
    x = np.ones((16, 20, 30, 1), np.float32)
    freq = np.asarray(SpecAugment(1, 5, 1.0, 0, 0, 0.0, seed=1)(x, training=True))
    time = np.asarray(SpecAugment(0, 0, 0.0, 1, 5, 1.0, seed=1)(x, training=True))
    assert np.array_equal(freq, np.broadcast_to(freq[:, :, :1], freq.shape))  # whole mel rows
    assert np.array_equal(time, np.broadcast_to(time[:, :1], time.shape))  # whole frames
    assert (freq == 0).any() and (time == 0).any()
    assert ((freq == 0).sum(axis=(1, 2, 3)) <= 5 * 30).all() and (
        (time == 0).sum(axis=(1, 2, 3)) <= 5 * 20
    ).all()
    np.testing.assert_array_equal(SpecAugment(2, 5, 1.0, 2, 5, 1.0)(x, training=False), x)


@pytest.mark.backends
def test_masks_differ_per_example_and_follow_their_probability():
    x = np.ones((256, 20, 30, 1), np.float32)
    out = np.asarray(SpecAugment(1, 8, 0.5, 0, 0, 0.0, seed=2)(x, training=True))
    masked_rows = out[:, :, 0, 0] == 0
    hit = masked_rows.any(axis=1)
    assert 0.3 < hit.mean() < 0.6  # p 0.5, minus the zero-width draws
    assert len({tuple(r) for r in masked_rows[hit]}) > 20  # each example draws its own band
