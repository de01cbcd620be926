"""ONNX exports (float32, static int8) agree with the Keras model on the same windows, run under
ONNX Runtime with any number of streams, predict like the Keras model and are checked by predict."""

import importlib.util
import json
import os

import numpy as np
import pytest
from test_export import save_tiny_model

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from birdtpu import fs  # noqa: E402
from birdtpu.config import load_config  # noqa: E402
from birdtpu.errors import DataError  # noqa: E402
from birdtpu.infer.export import export_model  # noqa: E402
from birdtpu.infer.files import model_format, read_meta  # noqa: E402
from birdtpu.infer.parity import check_export, synthetic_windows  # noqa: E402
from birdtpu.infer.predict import predict  # noqa: E402
from birdtpu.infer.runners import KerasRunner, load_model, open_model  # noqa: E402

QUIET = {"log": lambda *_: None}


def save_soft_model(folder, seed=0, scale=0.05, **kw):
    """`save_tiny_model` with its last layer's weights scaled down: probabilities near 0.05-0.8
    instead of 0 and 1, so the differences between runtimes show."""
    path = save_tiny_model(folder, seed=seed, **kw)
    model, _ = load_model(path)
    dense = model.get_layer("probabilities")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * scale, bias])
    model.save(path)
    return path


@pytest.fixture(scope="module")
def soft(tmp_path_factory):
    return save_soft_model(str(tmp_path_factory.mktemp("soft_model")))


@pytest.fixture(scope="module")
def check():
    return synthetic_windows(32000, 16000, n=6, seed=3)


def agreement(runner, reference, x):
    got, want = runner(x), reference(x)
    return float(np.abs(got - want).max()), bool(np.all(got.argmax(1) == want.argmax(1)))


def test_onnx_float_export_agrees_with_keras(soft, check, tmp_path):
    side = export_model(soft, "onnx", check=check, **QUIET)
    assert side["path"] == soft.replace("model.keras", "model_onnx.onnx")
    assert model_format(side["path"]) == "onnx"
    runner, reference = open_model(side["path"], batch_size=4), KerasRunner(soft, batch_size=4)
    assert runner.format == "onnx" and runner.classes == ["aa", "bb", "cc"]
    x = synthetic_windows(32000, 16000, n=5, seed=11)  # not the export's own check windows
    diff, same_top = agreement(runner, reference, x)
    print(f"onnx fp32: max |diff| {diff:.2e} on {len(x)} windows")
    assert diff <= 1e-5 and same_top
    saved = read_meta(side["path"])
    assert saved["format"] == "onnx" and saved["frontend"] is not None  # mel on the host
    assert saved["max_abs_diff"] <= 1e-5 and saved["top1_agreement"] == 1.0
    assert saved["check_windows"] == 6 and saved["source"] == "model.keras"


def test_onnx_int8_is_smaller_calibrated_and_reports_its_difference(soft, check, tmp_path):
    fp32 = export_model(soft, "onnx", out=str(tmp_path / "a.onnx"), check=check, **QUIET)
    int8 = export_model(soft, "onnx-int8", out=str(tmp_path / "b.onnx"), check=check, **QUIET)
    assert os.path.getsize(int8["path"]) < os.path.getsize(fp32["path"])
    x = synthetic_windows(32000, 16000, n=5, seed=11)
    diff, same_top = agreement(open_model(int8["path"], 4), KerasRunner(soft, 4), x)
    print(f"onnx int8: max |diff| {diff:.2e} on {len(x)} windows")
    assert 0 < int8["max_abs_diff"] < 0.05 and 0 < diff < 0.05 and same_top
    assert int8["top1_agreement"] == 1.0


def test_streams_and_threads_give_the_same_numbers(soft, check, tmp_path):
    path = export_model(soft, "onnx", out=str(tmp_path / "s.onnx"), check=check, **QUIET)["path"]
    x = synthetic_windows(32000, 16000, n=7, seed=5)
    one = open_model(path, batch_size=7, threads=1, streams=1)
    three = open_model(path, batch_size=7, threads=3, streams=3)
    assert len(one.sessions) == 1 and len(three.sessions) == 3
    np.testing.assert_allclose(three(x), one(x), atol=1e-6)


def test_mel_inside_an_onnx_file_is_refused_with_the_way_out(soft, check, tmp_path):
    with pytest.raises(DataError, match="cannot go inside an ONNX file.*--format openvino"):
        export_model(soft, "onnx", out=str(tmp_path / "x.onnx"), frontend="tflite", check=check)
    assert not os.path.exists(tmp_path / "x.onnx")


def test_an_onnx_export_that_drifted_is_refused_by_predict(soft, check, tmp_path):
    other = save_soft_model(str(tmp_path / "other"), seed=5)  # same shapes, other weights
    out = str(tmp_path / "other" / "drift.onnx")
    export_model(soft, "onnx", out=out, check=check, **QUIET)
    meta_path = str(tmp_path / "other" / "drift.json")
    meta = json.load(open(meta_path))
    meta["source"] = "model.keras"  # now points at `other`
    fs.write_json(meta_path, meta)
    infer = load_config(None, ["infer.window_seconds=2"]).infer
    wave = synthetic_windows(32000, 16000, n=3).reshape(-1)
    with pytest.raises(DataError, match="drift.onnx: differs from .*other/model.keras"):
        check_export(open_model(out), wave, infer)
    assert os.path.exists(other)


def test_a_broken_onnx_file_is_named(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not a protobuf")
    (tmp_path / "model.json").write_text(
        json.dumps(
            {"classes": ["a"], "sample_rate": 100, "clip_seconds": 1, "input_shape": [None, 100]}
        )
    )
    with pytest.raises(DataError, match="x.onnx: not a readable ONNX model"):
        open_model(str(tmp_path / "x.onnx"))


def test_predict_runs_an_onnx_export_like_its_keras_model(soft, check, tmp_path):
    from test_predict import config, scapes, submission

    scapes(tmp_path / "scapes")
    predict(config(tmp_path, soft), log=lambda *_: None)
    want = submission(tmp_path)
    path = export_model(soft, "onnx", out=str(tmp_path / "m" / "m.onnx"), check=check, **QUIET)
    notes = []
    summary = predict(config(tmp_path, path["path"], "infer.streams=2"), log=notes.append)
    got = submission(tmp_path)
    assert got.row_id.tolist() == want.row_id.tolist() == ["s0_2", "s0_4", "s1_2", "s1_4", "s1_6"]
    np.testing.assert_allclose(got[["aa", "bb", "cc"]], want[["aa", "bb", "cc"]], atol=1e-5)
    (checked,) = summary["export_checks"].values()
    assert checked["max_abs_diff"] <= 1e-5 and checked["check_windows"] == 2
    assert summary["model_seconds"][path["path"]] > 0
    assert any(f"{path['path']} (onnx):" in n and "windows/s" in n for n in notes)


@pytest.mark.slow
def test_efficientnet_exports_to_onnx_and_openvino_agree_with_keras(tmp_path):
    """The real backbone (EfficientNetB0 as `fit` builds it, random weights): its Normalization
    layer's constants must end up in the file, not as inputs."""
    from test_export import FRONT

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
    formats = ["onnx", "onnx-int8"]
    if importlib.util.find_spec("openvino"):
        formats += ["openvino", "openvino-fp16"]
    for fmt in formats:
        side = export_model(path, fmt, check=x, **QUIET)
        got = open_model(side["path"], 4)(x)
        if not fmt.endswith("int8"):
            np.testing.assert_allclose(got, reference, atol=1e-4)
        assert side["max_abs_diff"] == pytest.approx(float(np.abs(got - reference).max()), abs=1e-6)
