"""fit's validation report (issue 22, item 5): per-class recall beside the AUC, warnings for a
fold too small to judge a class and for constant predictions, and the best-checkpoint tie rule."""

import json
import math
import os

import keras
import numpy as np
import pytest

from birdtpu.config import load_config
from birdtpu.metrics import macro_roc_auc
from birdtpu.train.callbacks import BestCheckpoint
from birdtpu.train.validation_report import fold_warnings, per_class_recall, recall_text, report

CLASSES = ["finch", "tit"]


def test_one_misclassified_finch_reads_auc_1_and_recall_0():
    """The issue's fold: a perfect ranking AUC while the only finch's top class is tit."""
    y = np.array([[1, 0], [0, 1], [0, 1]])
    p = np.array([[0.4, 0.6], [0.1, 0.9], [0.2, 0.8]])
    assert macro_roc_auc(y, p) == 1.0
    scores = report(y, p, CLASSES)
    assert scores["per_class_recall"] == {"finch": 0.0, "tit": 1.0}
    assert scores["macro_recall"] == 0.5 and scores["top1_accuracy"] == pytest.approx(2 / 3)
    assert recall_text(scores) == "macro recall 0.500 (worst: finch 0.00, tit 1.00)"
    (line,) = fold_warnings(y, p, CLASSES, 2)
    assert line.startswith("1 of 2 classes have fewer than 2 validation clips (finch): ")
    assert fold_warnings(y, p, CLASSES, 1) == []


def test_recall_counts_ties_at_the_top_and_leaves_classes_without_clips_out():
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    recall = per_class_recall(y, p)
    assert recall[:2].tolist() == [1 / 3, 1.0] and math.isnan(recall[2])
    scores = report(y, p, ["a", "b", "c"])
    assert scores["per_class_recall"]["c"] is None
    assert scores["macro_recall"] == pytest.approx((1 / 3 + 1) / 2)
    json.dumps(scores, allow_nan=False)  # metrics.json stays strict JSON


def test_many_sparse_classes_are_named_first_few_and_counted():
    classes = [f"c{i}" for i in range(8)]
    y = np.eye(8, dtype=int)
    p = np.random.default_rng(0).random((8, 8))
    (line,) = fold_warnings(y, p, classes, 2)
    assert line.startswith(
        "8 of 8 classes have fewer than 2 validation clips (c0, c1, c2, c3, c4 and 3 more)"
    )


def test_constant_predictions_are_warned_about_and_varying_ones_are_not():
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    constant = np.tile([0.3, 0.7], (4, 1))
    assert macro_roc_auc(y, constant) == 0.5
    lines = fold_warnings(y, constant, CLASSES, 2)
    assert lines == [
        "the predictions are the same for all 4 validation clips: the model's output is "
        "constant and its AUC (0.5) means nothing"
    ]
    assert fold_warnings(y, constant + [[0, 0], [0, 0], [0, 0], [1e-3, 0]], CLASSES, 2) == []


def test_min_val_clips_is_a_train_key():
    assert load_config(None, []).train.min_val_clips == 2
    assert load_config(None, ["train.min_val_clips=5"]).train.min_val_clips == 5


def _best(tmp_path, monitor="val_auc"):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = BestCheckpoint(str(tmp_path / "model.keras"), monitor)
    best.set_model(model)
    return best


def test_a_tie_in_the_monitor_goes_to_the_lower_validation_loss(tmp_path):
    best = _best(tmp_path)
    path = tmp_path / "model.keras"
    best.on_epoch_end(0, {"val_auc": 0.5, "val_loss": 0.9})
    assert (best.best_epoch, best.best_loss) == (0, 0.9) and path.exists()
    written = os.path.getmtime(path)
    best.on_epoch_end(1, {"val_auc": 0.5, "val_loss": 1.2})  # tie, higher loss: kept
    assert best.best_epoch == 0 and os.path.getmtime(path) == written
    best.on_epoch_end(2, {"val_auc": 0.5, "val_loss": 0.4})  # tie, lower loss: wins
    assert (best.best_epoch, best.best, best.best_loss) == (2, 0.5, 0.4)
    best.on_epoch_end(3, {"val_auc": 0.6, "val_loss": 2.0})  # better monitor wins whatever the loss
    assert (best.best_epoch, best.best_loss) == (3, 2.0)
    best.on_epoch_end(
        4, {"val_auc": 0.55, "val_loss": 0.1}
    )  # worse monitor loses whatever the loss
    assert best.best_epoch == 3


def test_the_tie_rule_survives_a_resume_and_reads_older_backups(tmp_path):
    first = _best(tmp_path)
    first.on_epoch_end(0, {"val_auc": 1.0, "val_loss": 0.3})
    again = _best(tmp_path)
    again.set_state(json.loads(json.dumps(first.get_state())))
    again.on_epoch_end(1, {"val_auc": 1.0, "val_loss": 0.5})
    assert again.best_epoch == 0
    old = _best(tmp_path)
    old.set_state({"best": 1.0, "best_epoch": 0})  # a backup from before the tie rule
    old.on_epoch_end(1, {"val_auc": 1.0, "val_loss": 0.5})
    assert (old.best_epoch, old.best_loss) == (1, 0.5)


@pytest.mark.slow
def test_fit_warns_and_reports_recall_in_its_closing_line_and_metrics(tmp_path, tiny_data, capsys):
    from conftest import tiny_overrides

    from birdtpu.cli import main

    root, _ = tiny_data
    overrides = tiny_overrides(
        tmp_path,
        f"data.root={root}",
        "model.name=fat2019",
        "model.width=0.125",
        "tracking.wandb=disabled",
        "train.min_val_clips=10",  # the tiny fold holds 2 clips per class
    )
    assert main(["fit", *[x for o in overrides for x in ("--set", o)]]) == 0
    err = capsys.readouterr().err
    assert "fit: warning: 3 of 3 classes have fewer than 10 validation clips (" in err
    (closing,) = [line for line in err.splitlines() if line.startswith("fit: validation fold 0: ")]
    assert ", top-1 " in closing and ", macro recall " in closing and " (worst: " in closing
    metrics = json.load(open(tmp_path / "runs" / "tiny" / "metrics.json"))
    assert len(metrics["per_class_recall"]) == 3 and 0 <= metrics["macro_recall"] <= 1
    recall = list(metrics["per_class_recall"].values())
    assert metrics["macro_recall"] == pytest.approx(sum(recall) / 3, abs=1e-4)
