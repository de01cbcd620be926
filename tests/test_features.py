import keras
import numpy as np
import pytest
from test_frontend import check_layer

from birdtpu.layers.features import PERCENTILES, STATISTICS, GlobalFeatures


def reference(wave, windows=128):
    """The Freesound 2019 statistics in numpy, window by window."""
    hop = len(wave) // (windows + 1)
    rows = []
    for i in range(windows):
        w = wave[i * hop : i * hop + 2 * hop]
        rows.append([w.mean(), w.std(), w.max() - w.min(), *np.percentile(w, PERCENTILES)])
    return np.array(rows, np.float32)


def test_statistics_match_numpy_per_window():
    rng = np.random.default_rng(0)
    batch = np.stack(
        [rng.standard_normal(16000) * 0.1, np.sin(np.arange(16000) * 0.01) * rng.random(16000)]
    )
    out = np.asarray(GlobalFeatures()(batch.astype(np.float32)))
    assert out.shape == (2, 128, 12) and len(STATISTICS) == 12
    for i in range(2):
        np.testing.assert_allclose(out[i], reference(batch[i].astype(np.float32)), atol=1e-5)


def test_features_are_per_example():
    rng = np.random.default_rng(1)
    quiet, loud = rng.standard_normal((2, 8000)).astype(np.float32) * [[0.01], [0.9]]
    alone = np.asarray(GlobalFeatures(32)(quiet[None].astype(np.float32)))
    together = np.asarray(GlobalFeatures(32)(np.stack([quiet, loud]).astype(np.float32)))
    np.testing.assert_allclose(alone[0], together[0], atol=1e-6)


def test_round_trips_compiles_and_serves_as_a_second_branch(tmp_path):
    wave = np.random.default_rng(2).standard_normal((3, 4000)).astype(np.float32)
    out = np.asarray(check_layer(GlobalFeatures(16), wave, tmp_path))
    np.testing.assert_allclose(out[1], reference(wave[1], 16), atol=1e-5)
    inputs = keras.Input((4000,))
    branch = keras.layers.Flatten()(GlobalFeatures(16)(inputs))
    model = keras.Model(
        inputs, keras.layers.Dense(2)(keras.layers.Concatenate()([branch, inputs[:, :10]]))
    )
    assert model.predict(wave, verbose=0).shape == (3, 2)


def test_too_short_a_clip_is_refused():
    with pytest.raises(ValueError, match="too few"):
        GlobalFeatures(128)(np.zeros((1, 100), np.float32))
