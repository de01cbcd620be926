"""Exports (SavedModel, TFLite float32 and int8) agree with the Keras model on the same windows;
every format opens by its extension or folder; bad models and mismatched exports are named."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from birdtpu import fs
from birdtpu.config import load_config
from birdtpu.errors import DataError
from birdtpu.infer.export import export_model, split_frontend
from birdtpu.infer.files import model_format, read_meta
from birdtpu.infer.parity import check_export, synthetic_windows
from birdtpu.infer.runners import KerasRunner, load_model, open_model
from birdtpu.layers.frontend import MelSpectrogram, MelSpectrogramTflite, frontend

FRONT = [
    "frontend.n_fft=256",
    "frontend.frames=32",
    "frontend.n_mels=32",
    "frontend.fmax=8000",
    "data.sample_rate=16000",
]


def save_tiny_model(
    folder, classes=("aa", "bb", "cc"), sample_rate=16000, clip_seconds=2.0, seed=0
):
    """A `fit`-shaped model (waveform -> kapre mel frontend -> small CNN -> softmax) saved as
    folder/model.keras with model.json; returns the model path."""
    cfg = load_config(
        None, [*FRONT, f"data.sample_rate={sample_rate}", f"frontend.clip_seconds={clip_seconds}"]
    )
    keras.utils.set_random_seed(seed)
    wave = keras.Input((int(round(clip_seconds * sample_rate)),), name="waveform")
    x = frontend(cfg.frontend, sample_rate, cfg.augment)(wave)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)  # over 1,024 weights: int8 quantizes it
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    out = keras.layers.Dense(len(classes), activation="softmax", name="probabilities")(x)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.keras")
    keras.Model(wave, out).save(path)
    fs.write_json(
        os.path.join(folder, "model.json"),
        {"classes": list(classes), "sample_rate": sample_rate, "clip_seconds": clip_seconds},
    )
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(str(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="module")
def check_windows():
    return synthetic_windows(32000, 16000, n=6, seed=3)


@pytest.mark.parametrize(
    "overrides",
    [
        FRONT,
        [
            "frontend.frames=384",
            "frontend.clip_seconds=5",
            "frontend.n_fft=2048",
            "frontend.win_length=1024",
            "frontend.power=1",
        ],
    ],
)
def test_the_exportable_mel_layer_computes_what_the_training_one_does(overrides):
    cfg = load_config(None, overrides)
    samples = int(round(cfg.frontend.clip_seconds * cfg.data.sample_rate))
    mel = MelSpectrogram(
        samples,
        cfg.data.sample_rate,
        frames=cfg.frontend.frames,
        n_fft=cfg.frontend.n_fft,
        win_length=cfg.frontend.win_length,
        n_mels=cfg.frontend.n_mels,
        fmax=cfg.frontend.fmax,
        power=cfg.frontend.power,
    )
    lite = MelSpectrogramTflite.from_config(mel.get_config())
    x = synthetic_windows(samples, cfg.data.sample_rate, n=2)
    a, b = keras.ops.convert_to_numpy(mel(x)), keras.ops.convert_to_numpy(lite(x))
    assert a.shape == b.shape == (2, cfg.frontend.n_mels, cfg.frontend.frames, 1)
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * a.max())


def test_the_frontend_splits_off_without_augmentation(tiny):
    model, _ = load_model(tiny)
    front, rest = split_frontend(model)
    assert isinstance(front.layers[0], MelSpectrogramTflite)
    assert not any("SpecAugment" in type(x).__name__ for x in front.layers)
    x = synthetic_windows(32000, 16000, n=2)
    np.testing.assert_allclose(rest(front(x)), model(x, training=False), atol=1e-6)


@pytest.mark.parametrize(
    "fmt, front", [("savedmodel", "host"), ("tflite", "host"), ("tflite", "tflite")]
)
def test_float_exports_agree_with_keras_within_1e_4(tiny, check_windows, fmt, front, tmp_path):
    out = str(tmp_path / ("model_sm" if fmt == "savedmodel" else "model_fp32.tflite"))
    side = export_model(
        tiny, fmt, out=out, frontend=front, check=check_windows, log=lambda *_: None
    )
    assert model_format(out) == fmt and side["path"] == out
    runner, reference = open_model(out, batch_size=4), KerasRunner(tiny, batch_size=4)
    assert runner.format == fmt and runner.classes == ["aa", "bb", "cc"]
    x = synthetic_windows(32000, 16000, n=5, seed=11)  # other windows than the export's own check
    np.testing.assert_allclose(runner(x), reference(x), atol=1e-4)
    saved = read_meta(out)
    assert saved["format"] == fmt
    assert os.path.normpath(
        os.path.join(os.path.dirname(out), saved["source"])
    ) == os.path.normpath(tiny)
    assert (
        saved["max_abs_diff"] <= 1e-4
        and saved["top1_agreement"] == 1.0
        and saved["check_windows"] == 6
    )
    assert (saved["frontend"] is None) == (fmt == "savedmodel" or front == "tflite")


def test_int8_export_is_smaller_and_reports_its_difference(tiny, check_windows, tmp_path):
    fp32 = export_model(
        tiny, "tflite", out=str(tmp_path / "a.tflite"), check=check_windows, log=lambda *_: None
    )
    int8 = export_model(
        tiny,
        "tflite-int8",
        out=str(tmp_path / "b.tflite"),
        check=check_windows,
        log=lambda *_: None,
    )
    assert os.path.getsize(int8["path"]) < os.path.getsize(fp32["path"])
    assert 0 < int8["max_abs_diff"] < 0.2 and 0 <= int8["top1_agreement"] <= 1


def test_default_export_paths_sit_next_to_the_model(tiny, check_windows):
    side = export_model(tiny, "tflite", check=check_windows, log=lambda *_: None)
    assert side["path"] == tiny.replace("model.keras", "model_fp32.tflite")
    assert os.path.exists(tiny.replace("model.keras", "model_fp32.json"))
    assert (
        read_meta(side["path"])["format"] == "tflite"
        and read_meta(side["path"])["source"] == "model.keras"
    )
    assert "format" not in read_meta(tiny)  # fit's model.json is left as it was


def test_an_export_that_drifted_from_its_keras_model_is_refused(tiny, check_windows, tmp_path):
    other = save_tiny_model(str(tmp_path / "other"), seed=5)  # same shapes, other weights
    side = export_model(
        tiny,
        "tflite",
        out=str(tmp_path / "other" / "drift.tflite"),
        check=check_windows,
        log=lambda *_: None,
    )
    meta_path = str(tmp_path / "other" / "drift.json")
    meta = json.load(open(meta_path))
    meta["source"] = "model.keras"  # now points at `other`
    fs.write_json(meta_path, meta)
    infer = load_config(None, ["infer.window_seconds=2"]).infer
    wave = synthetic_windows(32000, 16000, n=3).reshape(-1)
    with pytest.raises(DataError, match="differs from .*other/model.keras"):
        check_export(open_model(side["path"]), wave, infer)
    assert os.path.exists(other)


def test_every_format_needs_a_model_and_its_sidecar(tmp_path):
    with pytest.raises(DataError, match="model not found"):
        open_model(str(tmp_path / "none.keras"))
    (tmp_path / "x.tflite").write_bytes(b"not a flatbuffer")
    with pytest.raises(DataError, match="model.json: model metadata not found"):
        open_model(str(tmp_path / "x.tflite"))
    (tmp_path / "model.json").write_text(
        json.dumps({"classes": ["a"], "sample_rate": 100, "clip_seconds": 1})
    )
    with pytest.raises(DataError, match="x.tflite: not a readable TFLite model"):
        open_model(str(tmp_path / "x.tflite"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="not a model"):
        model_format(str(tmp_path / "folder"))


def test_export_cli_writes_and_reports(tiny, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = str(tmp_path / "cli_int8.tflite")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "birdtpu.cli",
            "export",
            "--format",
            "tflite-int8",
            "--set",
            f"infer.model={tiny}",
            "--set",
            f"data.root={tmp_path}/nodata",
            "--out",
            out,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{out}: tflite-int8, largest difference to {tiny}" in proc.stdout
    assert (
        "checking on synthetic windows" in proc.stderr and read_meta(out)["format"] == "tflite-int8"
    )


@pytest.mark.slow
def test_efficientnet_exports_agree_with_keras(tmp_path):
    """The real backbone (EfficientNetB0 as `fit` builds it, random weights) in every format."""
    from birdtpu.models.registry import build_model

    cfg = load_config(None, [*FRONT, "frontend.clip_seconds=2", "model.pretrained=none"])
    path = str(tmp_path / "model.keras")
    build_model(cfg, 4).save(path)
    fs.write_json(
        str(tmp_path / "model.json"),
        {"classes": list("abcd"), "sample_rate": 16000, "clip_seconds": 2.0},
    )
    x = synthetic_windows(32000, 16000, n=4, seed=1)
    reference = KerasRunner(path, 4)(x)
    for fmt in ("savedmodel", "tflite", "tflite-int8"):
        side = export_model(path, fmt, check=x, log=lambda *_: None)
        got = open_model(side["path"], 4)(x)
        if fmt != "tflite-int8":
            np.testing.assert_allclose(got, reference, atol=1e-4)
        assert side["max_abs_diff"] == pytest.approx(float(np.abs(got - reference).max()), abs=1e-6)
