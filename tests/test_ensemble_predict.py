"""An ensemble of exported models (ONNX and OpenVINO IR of two models) in one `predict` run blends
like the Keras models and times each; the inference kernel, run locally with its code dataset on
the synthetic dataset's soundscapes, exports every model it finds and writes a valid submission."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import offline_kernel_env
from test_onnx import QUIET, save_soft_model

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from birdtpu import kaggle as bk  # noqa: E402
from birdtpu.infer.export import export_model  # noqa: E402
from birdtpu.infer.parity import synthetic_windows  # noqa: E402
from birdtpu.infer.predict import predict  # noqa: E402
from birdtpu.infer.submission import validate_submission  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "kernels" / "birdclef24-infer-cpu"


@pytest.mark.slow
def test_an_ensemble_of_exports_blends_like_its_keras_models_and_times_each(tmp_path):
    from test_predict import config, scapes, submission

    keras_models = [save_soft_model(str(tmp_path / f"fold{i}"), seed=i) for i in range(2)]
    scapes(tmp_path / "scapes")
    predict(config(tmp_path, ",".join(keras_models), "infer.smooth=[0.25,0.5,0.25]"), QUIET["log"])
    want = submission(tmp_path)
    check = synthetic_windows(32000, 16000, n=4, seed=3)
    exports = [
        export_model(path, fmt, check=check, **QUIET)["path"]
        for path, fmt in zip(keras_models, ("onnx", "openvino"))
    ]
    notes = []
    summary = predict(
        config(tmp_path, ",".join(exports), "infer.smooth=[0.25,0.5,0.25]"), notes.append
    )
    got = submission(tmp_path)
    assert got.row_id.tolist() == want.row_id.tolist()
    np.testing.assert_allclose(got[["aa", "bb", "cc"]], want[["aa", "bb", "cc"]], atol=1e-5)
    assert sorted(summary["export_checks"]) == sorted(exports)
    assert all(summary["model_seconds"][p] > 0 for p in exports)
    for path, fmt in zip(exports, ("onnx", "openvino")):
        assert any(n.startswith(f"predict: {path} ({fmt}): ") for n in notes)


def kernel_script() -> str:
    nb = nbformat.read(KERNEL / "birdclef24-infer-cpu.ipynb", as_version=4)
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
def test_the_inference_kernel_writes_a_valid_submission_with_an_exported_ensemble(
    tmp_path, tiny_data
):
    """The whole notebook, offline, with birdtpu installed from its code dataset into a throw-away
    target folder; two models (in the training kernel's layout) on the 12-s synthetic soundscapes."""
    root, _ = tiny_data
    data, models, out, target = (tmp_path / n for n in ("data", "models", "working", "target"))
    shutil.copytree(os.path.join(root, "soundscapes"), data / "test_soundscapes")
    for name in ("sample_submission.csv", "soundscape_labels.csv"):
        shutil.copy(os.path.join(root, name), data / name)
    classes = list(pd.read_csv(data / "sample_submission.csv").columns[1:])
    for i in range(2):
        save_soft_model(str(models / f"fold{i}"), seed=i, classes=classes, clip_seconds=5.0)
    code = bk.build_code_dataset(tmp_path / "birdtpu-code", "someone/birdtpu-code", src=ROOT)
    (tmp_path / "kernel.py").write_text(kernel_script())
    target.mkdir()
    env = {
        **offline_kernel_env(tmp_path, code, data, out, models, target),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "kernel.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "ensemble of 2 openvino export(s)" in proc.stdout
    assert proc.stderr.count("_openvino.xml (openvino): ") == 2  # each model timed
    sub = pd.read_csv(out / "submission.csv")
    truth = pd.read_csv(data / "soundscape_labels.csv")
    assert list(sub.columns) == ["row_id", *classes]
    stems = sorted(p.stem for p in (data / "test_soundscapes").glob("*.ogg"))
    ids = [f"{s}_{end}" for s in stems for end in (5, 10, 15)]  # 12 s: 3 windows, the last padded
    validate_submission(sub, classes, ids)
    assert sub.row_id.tolist() == ids and len(truth) == len(ids)
    assert "macro ROC-AUC" in proc.stderr
