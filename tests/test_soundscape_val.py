"""Validation on labelled soundscapes: the logged `val_soundscape_auc` is `soundscape_scores` of
the model's window predictions pooled into the 5-s label windows, computed here by hand."""

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import tiny_overrides

from birdtpu.config import load_config
from birdtpu.data.audio import load_audio
from birdtpu.data.synth import write_dataset
from birdtpu.errors import ConfigError
from birdtpu.metrics.scores import soundscape_scores
from birdtpu.train.soundscape_val import (
    METRIC,
    SoundscapeValidation,
    _pool_groups,
    from_labels,
    make_callback,
)


def test_pool_groups_by_centre_else_overlap():
    starts = np.arange(6) * 2.0  # 2-s windows of a 12-s file
    assert _pool_groups(starts, 2.0, 0, 5).tolist() == [0, 1]  # centres 1, 3
    assert _pool_groups(starts, 2.0, 5, 10).tolist() == [2, 3, 4]  # centres 5, 7, 9
    assert _pool_groups(starts, 2.0, 10, 12).tolist() == [5]
    # 6-s windows at 0 and 6 (centres 3, 9): [10, 12) holds no centre, window 1 overlaps it
    assert _pool_groups(np.array([0.0, 6.0]), 6.0, 10, 12).tolist() == [1]


def test_monitor_needs_labelled_soundscapes(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, f"train.monitor={METRIC}"))
    with pytest.raises(ConfigError, match="train.soundscape_val"):
        make_callback(cfg, ["a", "b"])
    assert make_callback(load_config(None, tiny_overrides(tmp_path)), ["a"]) is None


def _model(samples: int, classes: int) -> keras.Model:
    keras.utils.set_random_seed(3)
    wave = keras.Input((samples,))
    x = keras.layers.Reshape((100, samples // 100))(wave)
    x = keras.layers.Dense(8, activation="relu")(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    out = keras.layers.Dense(classes, activation="sigmoid")(x)
    model = keras.Model(wave, out)
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    return model


def test_logged_value_is_soundscape_scores_by_hand(tmp_path):
    cfg = load_config(
        None,
        tiny_overrides(
            tmp_path,
            "synth.plus_soundscapes=2",
            "synth.plus_labelled=2",
            "train.soundscape_val=train_soundscapes_labels.csv",
        ),
    )
    write_dataset(cfg.data.root, cfg.synth, log=lambda *_: None)
    root, rate = cfg.data.root, cfg.data.sample_rate
    classes = pd.read_csv(f"{root}/taxonomy.csv")["primary_label"].tolist()
    callback = make_callback(cfg, classes, log=lambda *_: None)
    assert isinstance(callback, SoundscapeValidation)
    model = _model(2 * rate, len(classes))
    rng = np.random.default_rng(0)
    history = model.fit(
        rng.normal(size=(8, 2 * rate)).astype(np.float32),
        rng.integers(0, 2, (8, len(classes))).astype(np.float32),
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[callback],
    )
    logged = history.history[METRIC][0]

    # by hand: 12-s soundscapes, 2-s model windows, label windows [0,5) [5,10) [10,12)
    labels = pd.read_csv(f"{root}/train_soundscapes_labels.csv")
    truth, preds = [], []
    for k in range(2):
        name = f"SYN_Train_{k:04d}"
        wave, _ = load_audio(f"{root}/train_soundscapes/{name}.ogg", rate)
        wave = np.pad(wave, (0, 12 * rate - len(wave)))
        clips = wave[: 12 * rate].reshape(6, 2 * rate)
        p = model.predict(clips, verbose=0)
        preds += [p[[0, 1]].max(0), p[[2, 3, 4]].max(0), p[[5]].max(0)]
        for start in ("00:00:00", "00:00:05", "00:00:10"):
            row = labels[(labels.filename == f"{name}.ogg") & (labels.start == start)]
            heard = set(row.primary_label.iat[0].split(";")) if len(row) else set()
            truth.append([int(c in heard) for c in classes])
    expected = soundscape_scores(np.array(truth), np.array(preds))
    assert np.array(truth).sum() > 0 and expected["classes_scored"] >= 1
    assert logged == pytest.approx(expected["window_macro_auc"], abs=1e-6)
    assert len(from_labels(cfg, classes).row_ids) == 6
