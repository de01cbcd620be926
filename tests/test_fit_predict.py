"""The thin path end to end: synth -> shards -> fit -> predict -> submission.csv."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli as cli
from conftest import tiny_overrides


@pytest.mark.slow
@pytest.mark.parametrize("head", ["clip", "sed"])
def test_fit_then_predict_writes_a_valid_submission(tmp_path, head):
    sets = [x for o in tiny_overrides(tmp_path, f"model.head={head}") for x in ("--set", o)]
    fit = cli("fit", *sets)
    assert fit.returncode == 0, fit.stderr[-3000:]
    run = tmp_path / "runs" / "tiny"
    for name in (
        "config.yaml",
        "model.keras",
        "model.json",
        "history.csv",
        "oof_fold0.csv",
        "metrics.json",
    ):
        assert (run / name).exists(), name
    assert not (run / "backup").exists()  # removed once the run has finished
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["macro_roc_auc"] <= 1.0 and metrics["val_clips"] > 0
    oof = pd.read_csv(run / "oof_fold0.csv")
    assert len(oof) == metrics["val_clips"] and oof.row_id.is_unique
    np.testing.assert_allclose(oof.iloc[:, 1:].sum(1), 1.0, atol=1e-4)  # softmax rows

    predict = cli("predict", *sets)
    assert predict.returncode == 0, predict.stderr[-3000:]
    sub = pd.read_csv(run / "submission.csv")
    truth = pd.read_csv(tmp_path / "data" / "soundscape_labels.csv", nrows=0)
    classes = json.loads((run / "model.json").read_text())["classes"]
    assert (
        list(sub.columns)
        == ["row_id", *classes]
        == list(truth.columns[:1]) + sorted(truth.columns[1:])
    )
    # 2 soundscapes of 12 s in 2-s windows
    assert len(sub) == 12 and sub.row_id.tolist()[:6] == [
        f"soundscape_000_{s}" for s in (2, 4, 6, 8, 10, 12)
    ]
    assert sub[classes].to_numpy().min() >= 0 and sub[classes].to_numpy().max() <= 1
    assert "macro ROC-AUC" in predict.stderr


@pytest.mark.slow
def test_demo_recipe_learns_the_synthetic_species(tmp_path):
    """What `make demo` promises: validation macro ROC-AUC above 0.9, one row per 5-s window."""
    recipe = os.path.join(os.path.dirname(__file__), os.pardir, "configs", "demo.yaml")
    sets = [
        "--cfg",
        recipe,
        "--set",
        f"data.root={tmp_path}/demo_data",
        "--set",
        f"output_dir={tmp_path}/runs",
    ]
    fit = cli("fit", *sets)
    assert fit.returncode == 0, fit.stderr[-3000:]
    metrics = json.loads((tmp_path / "runs" / "demo" / "metrics.json").read_text())
    assert metrics["macro_roc_auc"] > 0.9, metrics
    predict = cli("predict", *sets)
    assert predict.returncode == 0, predict.stderr[-3000:]
    sub = pd.read_csv(tmp_path / "runs" / "demo" / "submission.csv")
    truth = pd.read_csv(tmp_path / "demo_data" / "soundscape_labels.csv")
    assert sorted(sub.row_id) == sorted(truth.row_id) and len(sub.columns) == 1 + 6
