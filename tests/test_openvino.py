"""OpenVINO IR exports (float32, float16 weights, int8; mel on the host or inside the file) agree with the
Keras model on the same windows, run with any number of streams and predict like the Keras model."""

import json
import os

import numpy as np
import pytest
from test_onnx import QUIET, agreement, save_soft_model

pytest.importorskip("openvino")

from birdtpu.errors import DataError  # noqa: E402
from birdtpu.infer.export import export_model  # noqa: E402
from birdtpu.infer.files import model_format, read_meta  # noqa: E402
from birdtpu.infer.parity import synthetic_windows  # noqa: E402
from birdtpu.infer.predict import predict  # noqa: E402
from birdtpu.infer.runners import KerasRunner, open_model  # noqa: E402


@pytest.fixture(scope="module")
def soft(tmp_path_factory):
    return save_soft_model(str(tmp_path_factory.mktemp("soft_model_ov")))


@pytest.fixture(scope="module")
def check():
    return synthetic_windows(32000, 16000, n=6, seed=3)


@pytest.fixture(scope="module")
def fp32(soft, check):
    return export_model(soft, "openvino", check=check, **QUIET)


def test_openvino_float_export_agrees_with_keras(soft, fp32):
    path = fp32["path"]
    assert path == soft.replace("model.keras", "model_openvino.xml")
    assert os.path.exists(path[: -len(".xml")] + ".bin") and model_format(path) == "openvino"
    runner = open_model(path, batch_size=4)
    assert runner.format == "openvino" and runner.classes == ["aa", "bb", "cc"]
    x = synthetic_windows(32000, 16000, n=5, seed=11)
    diff, same_top = agreement(runner, KerasRunner(soft, 4), x)
    print(f"openvino fp32: max |diff| {diff:.2e} on {len(x)} windows")
    assert diff <= 1e-5 and same_top
    saved = read_meta(path)
    assert saved["format"] == "openvino" and saved["frontend"] is not None
    assert saved["max_abs_diff"] <= 1e-5 and saved["top1_agreement"] == 1.0


@pytest.mark.slow
def test_openvino_fp16_weights_halve_the_file_within_the_float_tolerance(soft, check, fp32):
    side = export_model(soft, "openvino-fp16", check=check, **QUIET)
    bin16, bin32 = (p[: -len(".xml")] + ".bin" for p in (side["path"], fp32["path"]))
    assert os.path.getsize(bin16) < 0.6 * os.path.getsize(bin32)
    x = synthetic_windows(32000, 16000, n=5, seed=11)
    diff, same_top = agreement(open_model(side["path"], 4), KerasRunner(soft, 4), x)
    print(f"openvino fp16: max |diff| {diff:.2e} on {len(x)} windows")
    assert 0 < diff <= 1e-3 and same_top and side["max_abs_diff"] <= 1e-3


def test_openvino_int8_from_the_calibrated_onnx_model_keeps_the_top_class(soft, check):
    side = export_model(soft, "openvino-int8", check=check, **QUIET)
    assert side["path"].endswith("model_openvino_int8.xml") and side["frontend"] is not None
    runner = open_model(side["path"], batch_size=4)
    assert runner.format == "openvino"
    x = synthetic_windows(32000, 16000, n=5, seed=11)
    diff, same_top = agreement(runner, KerasRunner(soft, 4), x)
    print(f"openvino int8: max |diff| {diff:.2e} on {len(x)} windows")
    assert 0 < diff < 0.1 and same_top  # quantized: near, not equal
    with pytest.raises(DataError, match="cannot go inside an ONNX file"):
        export_model(soft, "openvino-int8", check=check, frontend="tflite", **QUIET)


def test_streams_and_threads_give_the_same_numbers(fp32):
    x = synthetic_windows(32000, 16000, n=7, seed=5)
    one = open_model(fp32["path"], batch_size=7, threads=1, streams=1)
    two = open_model(fp32["path"], batch_size=7, threads=2, streams=2)
    assert len(one.requests) == 1 and len(two.requests) == 2
    np.testing.assert_allclose(two(x), one(x), atol=1e-6)


@pytest.mark.slow
def test_the_mel_front_end_can_go_inside_the_ir(soft, check, tmp_path):
    side = export_model(
        soft, "openvino", out=str(tmp_path / "in.xml"), frontend="tflite", check=check, **QUIET
    )
    assert read_meta(side["path"])["frontend"] is None
    x = synthetic_windows(32000, 16000, n=5, seed=11)
    diff, same_top = agreement(open_model(side["path"], 4), KerasRunner(soft, 4), x)
    print(f"openvino fp32, mel in the IR: max |diff| {diff:.2e} on {len(x)} windows")
    assert diff <= 1e-4 and same_top


def test_a_broken_ir_file_is_named(tmp_path):
    (tmp_path / "x.xml").write_text("<net>")
    (tmp_path / "model.json").write_text(
        json.dumps(
            {"classes": ["a"], "sample_rate": 100, "clip_seconds": 1, "input_shape": [None, 100]}
        )
    )
    with pytest.raises(DataError, match="x.xml: not a readable OpenVINO model"):
        open_model(str(tmp_path / "x.xml"))


def test_predict_runs_an_openvino_export_like_its_keras_model(soft, fp32, tmp_path):
    from test_predict import config, scapes, submission

    scapes(tmp_path / "scapes")
    predict(config(tmp_path, soft), log=lambda *_: None)
    want = submission(tmp_path)
    summary = predict(config(tmp_path, fp32["path"], "infer.threads=2"), log=lambda *_: None)
    got = submission(tmp_path)
    assert got.row_id.tolist() == want.row_id.tolist()
    np.testing.assert_allclose(got[["aa", "bb", "cc"]], want[["aa", "bb", "cc"]], atol=1e-5)
    (checked,) = summary["export_checks"].values()
    assert checked["max_abs_diff"] <= 1e-5 and checked["check_windows"] == 2
