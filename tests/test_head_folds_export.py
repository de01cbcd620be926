"""The embedding_head model under `fit --folds` and `export` (issue 23): K folds pooled into
oof.csv / truth.csv / cv.json, and the head exported as TFLite, ONNX and a SavedModel, each run
in a fresh process with the teacher beside it; the Perch v2 stand-in as the teacher."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import teacher_models as tm
from conftest import TINY, run_cli

from birdtpu.errors import DataError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head_folds(tmp_path_factory):
    """(root, overrides, completed `fit --folds all`) of a head on the stand-in's embeddings."""
    root = tmp_path_factory.mktemp("head_folds")
    teacher = tm.save_savedmodel(str(root / "perch_v2"))
    overrides = [
        *TINY,
        f"data.root={root}/data",
        f"output_dir={root}/runs",
        "name=head",
        "model.name=embedding_head",
        f"embed.teacher=perch:{teacher}",
        "train.epochs=2",
        "infer.window_seconds=5",
    ]
    sets = [x for o in overrides for x in ("--set", o)]
    return root, sets, run_cli("fit", *sets, "--folds", "all")


def test_fit_folds_trains_each_fold_and_pools_every_window_once(head_folds):
    from sklearn.metrics import roc_auc_score

    from birdtpu.teachers.embed import read_embeddings, read_manifest

    root, _, done = head_folds
    assert done.returncode == 0, done.stderr
    run = f"{root}/runs/head"
    assert "fit: embedding_head on perch-v2 embeddings (1536), 3 classes" in done.stderr
    folder = json.load(open(f"{run}/fold0/model.json"))["embeddings"]  # one set for all folds
    manifest = read_manifest(folder)
    data = read_embeddings(folder, manifest)
    fold_of = dict(zip(data["id"], data["fold"]))
    assert len(fold_of) == 18  # 3 species x 6 recordings of 2-4 s: one 5-s window each
    parts = []
    for k in range(3):
        for name in ("model.keras", "model.json", "metrics.json", "config.yaml"):
            assert os.path.exists(f"{run}/fold{k}/{name}"), (k, name)
        part = pd.read_csv(f"{run}/fold{k}/oof_fold{k}.csv")
        assert {fold_of[i] for i in part["row_id"]} == {k}  # out of fold: fold k's windows only
        parts.append(part)
    oof, truth = pd.read_csv(f"{run}/oof.csv"), pd.read_csv(f"{run}/truth.csv")
    classes = manifest["classes"]
    assert list(oof.columns) == list(truth.columns) == ["row_id", *classes]
    assert sorted(oof["row_id"]) == sorted(fold_of)  # every window (recording) exactly once
    assert list(truth["row_id"]) == list(oof["row_id"])
    pd.testing.assert_frame_equal(oof, pd.concat(parts, ignore_index=True))
    target = dict(zip(data["id"], data["target"] > 0))  # primary and secondary labels
    np.testing.assert_array_equal(truth[classes], [target[i] for i in truth["row_id"]])
    cv = json.load(open(f"{run}/cv.json"))
    assert cv["folds"] == [0, 1, 2] and cv["oof_rows"] == 18
    expected = np.mean(
        [roc_auc_score(truth[c], oof[c]) for c in classes]
    )  # macro: mean of per-class ROC-AUC
    assert cv["macro_roc_auc"] == pytest.approx(expected, abs=1e-9)
    for k in range(3):
        fold = json.load(open(f"{run}/fold{k}/metrics.json"))
        assert cv["fold_macro_roc_auc"][str(k)] == fold["macro_roc_auc"]


PREDICT = """
import sys, numpy as np
from birdtpu.data.audio import load_audio
from birdtpu.infer.runners import open_model
from birdtpu.infer.windows import windows
wave, _ = load_audio(sys.argv[1], 32000)
cut = np.asarray(windows(wave, 32000, 5.0)[0])
for i, path in enumerate(sys.argv[3:]):
    runner = open_model(path)
    print(path, type(runner).__name__, runner.format)
    np.save(f"{sys.argv[2]}_{i}.npy", runner(cut))
"""


def test_exported_heads_predict_as_the_keras_head_in_a_fresh_process(head_folds, tmp_path):
    from birdtpu.data.audio import load_audio
    from birdtpu.infer.runners import open_model
    from birdtpu.infer.windows import windows
    from birdtpu.teachers.head_export import export_head

    root, sets, done = head_folds
    assert done.returncode == 0, done.stderr
    model = f"{root}/runs/head/fold0/model.keras"
    done = run_cli("export", *sets, "--format", "tflite", "--model", model)
    assert done.returncode == 0, done.stderr
    tflite = f"{root}/runs/head/fold0/model_fp32.tflite"
    side = json.load(open(f"{root}/runs/head/fold0/model_fp32.json"))
    assert side["format"] == "tflite" and side["source"] == "model.keras"
    assert side["teacher"] == json.load(open(f"{root}/runs/head/fold0/model.json"))["teacher"]
    assert side["check_windows"] == 6 and side["max_abs_diff"] < 1e-5  # 2 soundscapes x 3 windows
    onnx = export_head(model, "onnx", check=None, log=lambda *_: None)
    saved = export_head(model, "savedmodel", out=str(tmp_path / "head_saved"), log=lambda *_: None)
    assert onnx["check_windows"] == 8 and onnx["max_abs_diff"] < 1e-5  # synthetic windows
    with pytest.raises(DataError, match="format 'openvino' is not one of savedmodel, tflite, onnx"):
        export_head(model, "openvino")

    sound = f"{root}/data/soundscapes/soundscape_000.ogg"
    paths = [tflite, onnx["path"], saved["path"]]
    fresh = subprocess.run(
        [sys.executable, "-c", PREDICT, sound, str(tmp_path / "out"), *paths],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert fresh.returncode == 0, fresh.stderr
    assert [line.split()[1:] for line in fresh.stdout.splitlines()] == [
        ["HeadRunner", "tflite"],
        ["HeadRunner", "onnx"],
        ["HeadRunner", "savedmodel"],
    ]
    wave, _ = load_audio(sound, 32000)
    keras_head = open_model(model)(np.asarray(windows(wave, 32000, 5.0)[0]))
    assert keras_head.shape == (3, 3)
    for i in range(3):
        np.testing.assert_allclose(np.load(tmp_path / f"out_{i}.npy"), keras_head, atol=1e-5)

    sub_path = tmp_path / "submission.csv"
    done = run_cli(
        "predict", *sets, "--set", f"infer.model={tflite}", "--set", f"infer.submission={sub_path}"
    )
    assert done.returncode == 0, done.stderr
    assert f"predict: {tflite} vs {root}/runs/head/fold0/model.keras on 3 window(s)" in done.stderr
    sub = pd.read_csv(sub_path)
    np.testing.assert_allclose(sub.iloc[:3, 1:].to_numpy(), keras_head, atol=1e-5)


def test_a_head_export_off_its_keras_head_is_refused(head_folds, tmp_path, monkeypatch):
    from birdtpu import fs
    from birdtpu.config import load_config
    from birdtpu.infer import parity
    from birdtpu.infer.runners import open_model
    from birdtpu.teachers.head_export import export_head

    root, _, done = head_folds
    assert done.returncode == 0, done.stderr
    model = f"{root}/runs/head/fold0/model.keras"
    side = export_head(model, "tflite", out=str(tmp_path / "head.tflite"), log=lambda *_: None)
    meta = json.load(open(tmp_path / "head.json"))
    meta["source"] = f"{root}/runs/head/fold1/model.keras"  # another fold's head
    fs.write_json(str(tmp_path / "head.json"), meta)
    infer = load_config(None, ["infer.window_seconds=5"]).infer
    wave = parity.synthetic_windows(160000, 32000, n=2).reshape(-1)
    with pytest.raises(DataError, match="differs from .*fold1/model.keras"):
        parity.check_export(open_model(side["path"]), wave, infer)

    monkeypatch.setattr(parity, "FLOAT_TOLERANCE", -1.0)  # any difference is too large
    with pytest.raises(DataError, match="over -1.0.*; removed"):
        export_head(model, "tflite", out=str(tmp_path / "off.tflite"), log=lambda *_: None)
    assert not (tmp_path / "off.tflite").exists() and not (tmp_path / "off.json").exists()
