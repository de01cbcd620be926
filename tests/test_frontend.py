import keras
import librosa
import numpy as np
import pytest

from birdtpu.config import AugmentConfig, FrontendConfig
from birdtpu.layers.frontend import MelSpectrogram, NormalizeSpectrogram, SpecAugment, ToImage, frontend

RATE = 16000


def clip(seed=0, seconds=1.0, gain=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (gain * np.sin(2 * np.pi * rng.uniform(500, 4000) * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("htk", [False, True])
def test_mel_matches_librosa(htk):
    wave = clip()
    layer = MelSpectrogram(len(wave), RATE, frames=64, n_fft=512, n_mels=40, fmin=20, fmax=8000, htk=htk)
    ours = np.asarray(layer(wave[None]))[0, :, :, 0]
    ref = librosa.feature.melspectrogram(y=wave, sr=RATE, n_fft=512, hop_length=layer.hop_length, n_mels=40,
                                         fmin=20, fmax=8000, htk=htk, power=2.0, center=True, pad_mode="constant")
    ref = ref[:, :64]
    ours_db, ref_db = 10 * np.log10(np.maximum(ours, 1e-10)), 10 * np.log10(np.maximum(ref, 1e-10))
    loud = ref_db > ref_db.max() - 60
    assert np.abs(ours_db - ref_db)[loud].max() < 0.01


def test_frontend_is_per_example_and_round_trips(tmp_path):
    cfg = FrontendConfig(clip_seconds=1.0, n_fft=512, frames=32, n_mels=24, fmax=8000)
    front = frontend(cfg, RATE, AugmentConfig())
    quiet = clip(1, gain=0.01)
    batch = np.stack([quiet, clip(2, gain=0.9), clip(3, gain=0.5)])
    alone = np.asarray(front(quiet[None], training=False))[0]
    together = np.asarray(front(batch, training=False))[0]
    np.testing.assert_allclose(alone, together, atol=1e-5)
    assert alone.shape == (24, 32, 3) and 0 <= alone.min() and alone.max() <= 255.0 + 1e-3
    inputs = keras.Input((RATE,))
    model = keras.Model(inputs, front(inputs))
    path = str(tmp_path / "front.keras")
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(batch)), np.asarray(model(batch)), atol=1e-5)


@pytest.mark.parametrize("layer", [
    MelSpectrogram(RATE, RATE, frames=32, n_fft=256, n_mels=16, fmax=8000),
    NormalizeSpectrogram(),
    ToImage(3),
    SpecAugment(2, 4, 1.0, 2, 4, 1.0, seed=3),
])
def test_layers_config_and_xla(layer):
    clone = layer.__class__.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    x = clip()[None] if isinstance(layer, MelSpectrogram) else np.random.rand(2, 16, 32, 1).astype(np.float32)
    inputs = keras.Input(x.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    model.compile(jit_compile=True)
    out = model.predict(x, verbose=0)
    assert out.shape == model.output_shape[:0] + (x.shape[0],) + tuple(model.output_shape[1:])


def test_masks_land_on_their_axis():
    x = np.ones((16, 20, 30, 1), np.float32)
    freq = np.asarray(SpecAugment(1, 5, 1.0, 0, 0, 0.0, seed=1)(x, training=True))
    time = np.asarray(SpecAugment(0, 0, 0.0, 1, 5, 1.0, seed=1)(x, training=True))
    assert np.array_equal(freq, np.broadcast_to(freq[:, :, :1], freq.shape))  # whole mel rows
    assert np.array_equal(time, np.broadcast_to(time[:, :1], time.shape))  # whole frames
    assert (freq == 0).any() and (time == 0).any()
    assert ((freq == 0).sum(axis=(1, 2, 3)) <= 5 * 30).all() and ((time == 0).sum(axis=(1, 2, 3)) <= 5 * 20).all()
    np.testing.assert_array_equal(SpecAugment(2, 5, 1.0, 2, 5, 1.0)(x, training=False), x)
