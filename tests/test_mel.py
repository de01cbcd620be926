"""The mel spectrogram layers against librosa, against each other (TFLite form, kapre form) and
per clip; the layers run on both backends, the TFLite and kapre forms on TensorFlow only."""

import keras
import librosa
import numpy as np
import pytest
from helpers import check_layer

from birdtpu.infer.hostmel import HostFrontend
from birdtpu.layers.frontend import PowerToDb
from birdtpu.layers.mel import MelSpectrogram, MelSpectrogramTflite, mel_filterbank

RATE = 16000
# (n_fft, win_length, frames): win_length 0 is n_fft; hops 253, 253 and 168 samples
SHAPES = [(512, 0, 64), (512, 400, 64), (2048, 1024, 96)]


def clip(seed=0, seconds=1.0, gain=0.3, noise=3e-3):
    """A harmonic chirp over a faint noise floor (some bins more than 60 dB below the peak)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = rng.uniform(500, 3000)
    tones = sum(np.sin(2 * np.pi * k * (f0 + 1500 * t) * t) / k for k in (1, 2, 3))
    wave = tones * np.hanning(len(t)) + noise * rng.standard_normal(len(t))
    return (gain * wave).astype(np.float32)


def numpy_of(x):
    return keras.ops.convert_to_numpy(x)


def tensorflow_backend_only():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a TensorFlow-backend layer")


@pytest.mark.backends
@pytest.mark.parametrize("htk", [False, True])
def test_filterbank_is_librosas(htk):
    ours = mel_filterbank(32000, 2048, 128, 20.0, 16000.0, htk)
    ref = librosa.filters.mel(
        sr=32000, n_fft=2048, n_mels=128, fmin=20.0, fmax=16000.0, htk=htk, norm="slaney"
    )
    assert ours.shape == (1025, 128) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref.T, rtol=1e-5, atol=1e-7 * ref.max())


@pytest.mark.backends
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "fft{}_win{}".format(*s[:2]))
@pytest.mark.parametrize("htk", [False, True], ids=["slaney", "htk"])
@pytest.mark.parametrize("power", [2.0, 1.0], ids=["power", "magnitude"])
def test_mel_matches_librosa_within_a_hundredth_of_a_db(shape, htk, power):
    n_fft, win_length, frames = shape
    waves = np.stack([clip(0), clip(1, gain=0.9), clip(2, gain=0.01)])
    layer = MelSpectrogram(
        RATE,
        RATE,
        frames=frames,
        n_fft=n_fft,
        win_length=win_length,
        n_mels=40,
        fmin=20,
        fmax=8000,
        htk=htk,
        power=power,
    )
    ours = numpy_of(PowerToDb(top_db=200, power=power)(layer(waves)))[..., 0]
    for wave, got in zip(waves, ours):
        ref = librosa.feature.melspectrogram(
            y=wave,
            sr=RATE,
            n_fft=n_fft,
            hop_length=layer.hop_length,
            win_length=layer.win_length,
            n_mels=40,
            fmin=20,
            fmax=8000,
            htk=htk,
            power=power,
            center=True,
            pad_mode="constant",
        )[:, :frames]
        ref_db = (20.0 / power) * np.log10(np.maximum(ref, 1e-10))
        loud = ref_db > ref_db.max() - 60
        assert 0.2 < loud.mean() < 0.95
        assert np.abs(got - ref_db)[loud].max() <= 0.01


@pytest.mark.backends
def test_a_clip_does_not_depend_on_its_batch_mates():
    layer = MelSpectrogram(RATE, RATE, frames=64, n_fft=512, win_length=400, n_mels=40, fmax=8000)
    quiet = clip(3, gain=1e-3)
    alone = numpy_of(layer(quiet[None]))[0]
    together = numpy_of(layer(np.stack([clip(4, gain=1.0), quiet, clip(5)])))[1]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6 * alone.max())


@pytest.mark.backends
def test_an_explicit_hop_and_a_short_window_round_trip_and_compile(tmp_path):
    layer = MelSpectrogram(
        4000, RATE, frames=30, n_fft=256, win_length=200, hop_length=100, n_mels=20, fmax=8000
    )
    waves = np.stack([clip(6, seconds=0.25), clip(7, seconds=0.25)])
    model = check_layer(layer, waves, (2, 20, 30, 1), 0, tmp_path)
    np.testing.assert_allclose(
        model.predict(waves, verbose=0), numpy_of(layer(waves)), rtol=1e-5, atol=1e-5
    )


@pytest.mark.backends
def test_the_layer_stays_float32_under_mixed_precision():
    waves = np.stack([clip(8), clip(9)])
    args = dict(frames=32, n_fft=512, n_mels=24, fmax=8000)
    plain = numpy_of(MelSpectrogram(RATE, RATE, **args)(waves))
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        out = MelSpectrogram(RATE, RATE, **args)(waves)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(numpy_of(out), plain)


@pytest.mark.backends
def test_configurations_that_do_not_fit_are_named():
    with pytest.raises(ValueError, match="66 frames do not fit 16000 samples at hop 250"):
        MelSpectrogram(RATE, RATE, frames=66, hop_length=250)
    with pytest.raises(ValueError, match="win_length 600 is longer than n_fft 512"):
        MelSpectrogram(RATE, RATE, frames=64, n_fft=512, win_length=600)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "fft{}_win{}".format(*s[:2]))
@pytest.mark.parametrize("power", [2.0, 1.0], ids=["power", "magnitude"])
def test_the_tflite_layer_gives_the_same_numbers(shape, power):
    tensorflow_backend_only()
    n_fft, win_length, frames = shape
    mel = MelSpectrogram(
        RATE, RATE, frames, n_fft, win_length, n_mels=40, fmax=8000, htk=True, power=power
    )
    lite = MelSpectrogramTflite.from_config(mel.get_config())
    waves = np.stack([clip(10), clip(11, gain=0.05)])
    a, b = numpy_of(mel(waves)), numpy_of(lite(waves))
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * a.max())


def test_the_host_stft_is_the_tflite_layers():
    tensorflow_backend_only()
    lite = MelSpectrogramTflite(RATE, RATE, 96, 2048, 1024, n_mels=40, fmax=8000)
    front = keras.Sequential([keras.Input((RATE,)), lite, PowerToDb(80.0)])
    host = HostFrontend(keras.saving.serialize_keras_object(front))
    waves = np.stack([clip(12), clip(13)])
    expected = numpy_of(lite.stft_magnitude(waves))
    np.testing.assert_allclose(host.magnitude(waves), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "fft{}_win{}".format(*s[:2]))
@pytest.mark.parametrize("htk", [False, True], ids=["slaney", "htk"])
@pytest.mark.parametrize("power", [2.0, 1.0], ids=["power", "magnitude"])
def test_the_kapre_layer_gives_the_same_numbers(shape, htk, power):
    tensorflow_backend_only()
    kapre_mel = pytest.importorskip("birdtpu.layers.kapre_mel")
    n_fft, win_length, frames = shape
    mel = MelSpectrogram(
        RATE, RATE, frames, n_fft, win_length, n_mels=40, fmax=8000, htk=htk, power=power
    )
    kapre = kapre_mel.KapreMelSpectrogram.from_config(mel.get_config())
    waves = np.stack([clip(14), clip(15, gain=0.05)])
    a, b = numpy_of(mel(waves)), numpy_of(kapre(waves))
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6 * a.max())


def test_the_kapre_layer_round_trips_and_compiles(tmp_path):
    tensorflow_backend_only()
    kapre_mel = pytest.importorskip("birdtpu.layers.kapre_mel")
    layer = kapre_mel.KapreMelSpectrogram(4000, RATE, frames=16, n_fft=256, n_mels=20, fmax=8000)
    waves = np.stack([clip(16, seconds=0.25), clip(17, seconds=0.25)])
    check_layer(layer, waves, (2, 20, 16, 1), 0, tmp_path)
