"""Every registered birdtpu layer through the shared check (tests/helpers.py), on both backends."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import check_layer

from birdtpu.layers.augment import BackgroundMix, CutMix, MixUp, WaveAugment
from birdtpu.layers.frontend import (
    MelSpectrogram,
    MelSpectrogramTflite,
    NormalizeSpectrogram,
    PowerToDb,
    SpecAugment,
    ToImage,
)
from birdtpu.layers.stacker import OneHot, PerClassWeighting, ShiftedTanh, Stacker
from birdtpu.models.fat2019 import Log1p, PixelShuffleTime
from birdtpu.models.heads import AttentionPool, FrameUpsample, Reduce, SEDBlend
from birdtpu.saving import registered
from birdtpu.train.projection import EmbeddingDistiller

pytestmark = pytest.mark.backends
RNG = np.random.default_rng(0)
B = 4


def _f(*shape, lo=0.0, hi=1.0):
    return RNG.uniform(lo, hi, (B, *shape)).astype("float32")


def _targets(classes=3):
    return (RNG.uniform(size=(B, classes)) > 0.5).astype("float32")


def _student():
    x = keras.Input((16,), name="waveform")
    pooled = keras.layers.Dense(8, name="pool")(x)
    return keras.Model(x, keras.layers.Dense(3, activation="sigmoid")(pooled))


# name -> (layer factory, inputs, expected output shape, trainable weights)
CASES = {
    "MelSpectrogram": (
        lambda: MelSpectrogram(4000, 16000, frames=16, n_fft=256, n_mels=20, fmax=8000),
        _f(4000, lo=-1),
        (B, 20, 16, 1),
        0,
    ),
    "MelSpectrogramTflite": (
        lambda: MelSpectrogramTflite(4000, 16000, frames=16, n_fft=256, n_mels=20, fmax=8000),
        _f(4000, lo=-1),
        (B, 20, 16, 1),
        0,
    ),
    "PowerToDb": (lambda: PowerToDb(80.0), _f(20, 16, 1), (B, 20, 16, 1), 0),
    "NormalizeSpectrogram": (lambda: NormalizeSpectrogram(), _f(20, 16, 1), (B, 20, 16, 1), 0),
    "SpecAugment": (
        lambda: SpecAugment(1, 4, 1.0, 2, 4, 1.0, seed=3),
        _f(20, 16, 1),
        (B, 20, 16, 1),
        0,
    ),
    "ToImage": (lambda: ToImage(3), _f(20, 16, 1), (B, 20, 16, 3), 0),
    "Log1p": (lambda: Log1p(), _f(1, hi=30.0), (B, 1), 0),
    "WaveAugment": (
        lambda: WaveAugment(gain_prob=1.0, gauss_prob=1.0, noise_prob=1.0, shift_prob=1.0, seed=4),
        _f(4000, lo=-1),
        (B, 4000),
        0,
    ),
    "BackgroundMix": (
        lambda: BackgroundMix(prob=1.0, seed=5),
        [_f(4000, lo=-1), _f(4000, lo=-1)],
        (B, 4000),
        0,
    ),
    "MixUp": (lambda: MixUp(prob=1.0, seed=6), [_f(20, 16, 1), _targets()], (B, 20, 16, 1), 0),
    "CutMix": (lambda: CutMix(prob=1.0, seed=7), [_f(20, 16, 1), _targets()], (B, 20, 16, 1), 0),
    "Reduce": (lambda: Reduce(axis=1, how="max"), _f(5, 7, 6), (B, 7, 6), 0),
    "AttentionPool": (
        lambda: AttentionPool(),
        [_f(7, 3, lo=-1), _f(7, 3)],
        (B, 3),
        0,
    ),
    "FrameUpsample": (lambda: FrameUpsample(16), _f(5, 3), (B, 16, 3), 0),
    "SEDBlend": (lambda: SEDBlend(0.5), [_f(3), _f(16, 3)], (B, 3), 0),
    "PixelShuffleTime": (lambda: PixelShuffleTime(2), _f(4, 7, 3), (B, 4, 4, 6), 0),
    "PerClassWeighting": (
        lambda: PerClassWeighting(1, kernel_initializer=OneHot(-1)),
        _f(3, 4),
        (B, 3, 1),
        2,
    ),
    "ShiftedTanh": (lambda: ShiftedTanh(1.6), _f(3), (B, 3), 0),
    "Stacker": (lambda: Stacker(["a", "b", "c"], ["m1", "m2"]), _f(3, 2), (B, 3), 4),
    # at inference (a waveform alone) the student's output; its projection is 2 more weights
    "EmbeddingDistiller": (lambda: EmbeddingDistiller(_student(), "pool", 5), _f(16), (B, 3), 6),
}


try:
    from birdtpu.layers.kapre_mel import KapreMelSpectrogram
except ImportError:  # kapre is the optional extra [kapre]
    KapreMelSpectrogram = None
if KapreMelSpectrogram is not None:
    CASES["KapreMelSpectrogram"] = (
        lambda: KapreMelSpectrogram(4000, 16000, frames=16, n_fft=256, n_mels=20, fmax=8000),
        _f(4000, lo=-1),
        (B, 20, 16, 1),
        0,
    )
TF_ONLY = ("MelSpectrogramTflite", "KapreMelSpectrogram")


def test_every_registered_layer_has_a_case():
    layers = {
        name.split(">", 1)[1]
        for name, cls in registered().items()
        if isinstance(cls, type) and issubclass(cls, keras.layers.Layer)
    }
    assert layers - set(CASES) == set(), "registered layers without a contract case"
    assert set(CASES) - layers == set(), "cases for layers that are not registered"


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_contract(name, tmp_path):
    if name in TF_ONLY and keras.backend.backend() != "tensorflow":
        pytest.skip(f"{name} runs on the TensorFlow backend only")
    factory, inputs, shape, weights = CASES[name]
    check_layer(factory(), inputs, shape, weights, tmp_path)
