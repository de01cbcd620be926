"""Training pieces: schedules, losses, callbacks (backup, best checkpoint, early stopping, history,
W&B), out-of-fold tables and K-fold runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import tiny_overrides

from birdtpu.config import load_config
from birdtpu.errors import BirdtpuError, ConfigError
from birdtpu.tracking import Tracker
from birdtpu.train import callbacks as cb
from birdtpu.train import cv
from birdtpu.train.fit import oof_tables
from birdtpu.train.losses import make_loss, make_optimizer
from birdtpu.train.schedules import WarmupDecay, make_schedule, peak_lr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_cfg(*overrides: str):
    return load_config(None, list(overrides)).train


# ------------------------------------------------------------------ schedules


def lrs(schedule, steps):
    return np.array([float(schedule(s)) for s in steps])


def test_cosine_schedule_matches_keras_cosine_decay_with_warmup():
    cfg = train_cfg(
        "train.epochs=10", "train.warmup_epochs=2", "train.lr=0.003", "train.min_lr_ratio=0.05"
    )
    ours = make_schedule(cfg, steps_per_epoch=7, global_batch=32)
    ref = keras.optimizers.schedules.CosineDecay(
        0.003 * 0.05, decay_steps=70 - 14, alpha=0.05, warmup_target=0.003, warmup_steps=14
    )
    steps = range(0, 75)
    np.testing.assert_allclose(lrs(ours, steps), lrs(ref, steps), rtol=1e-5)
    assert float(ours(14)) == pytest.approx(0.003) and float(ours(70)) == pytest.approx(
        0.003 * 0.05
    )


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("step", lambda t: max(0.5 ** (t // 20), 0.01)),  # x0.5 every 2 epochs of 10 steps
        ("exponential", lambda t: max(0.5 ** (t / 10), 0.01)),  # x0.5 per epoch
        ("constant", lambda t: 1.0),
    ],
)
def test_step_exponential_and_constant_schedules(kind, expected):
    cfg = train_cfg(
        "train.epochs=12",
        "train.warmup_epochs=1",
        "train.lr=1.0",
        f"train.schedule={kind}",
        "train.lr_decay=0.5",
        "train.lr_step_epochs=2",
    )
    schedule = make_schedule(cfg, steps_per_epoch=10, global_batch=8)
    steps = np.arange(120)
    want = [0.01 + 0.99 * s / 10 if s < 10 else expected(s - 10) for s in steps]
    np.testing.assert_allclose(lrs(schedule, steps), want, rtol=1e-5)


def test_awsaf49_rule_scales_the_peak_by_the_global_batch():
    cfg = train_cfg("train.lr=1.4e-6", "train.lr_scale=global_batch")
    assert peak_lr(cfg, 256) == pytest.approx(3.584e-4)
    assert make_schedule(cfg, 10, 256).peak == pytest.approx(3.584e-4)
    assert peak_lr(train_cfg("train.lr=0.001"), 256) == 0.001


def test_warmup_longer_than_training_is_shortened_and_said():
    said = []
    schedule = make_schedule(
        train_cfg("train.epochs=2", "train.warmup_epochs=5"), 10, 4, said.append
    )
    assert schedule.warmup_steps == 19 and "warm-up shortened to 19 steps" in said[0]


def test_schedule_serializes():
    schedule = WarmupDecay(0.1, 100, 10, "step", 0.02, 0.3, 25)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    np.testing.assert_allclose(lrs(again, range(100)), lrs(schedule, range(100)))
    with pytest.raises(ValueError, match="kind must be one of"):
        WarmupDecay(0.1, 100, kind="linear")


# ------------------------------------------------------------------ losses and optimizers

Y = np.array([[1, 0, 0], [0, 1, 0], [0, 0.5, 1]], np.float32)
P = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.1, 0.3, 0.6]], np.float32)


def _bce(y, p):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


@pytest.mark.backends
@pytest.mark.parametrize(
    "loss, reference",
    [
        ("cce", lambda y, p, s: -(y * (1 - s) + s / 3) @ np.log(p).T),
        ("bce", lambda y, p, s: _bce(y * (1 - s) + s / 2, p).mean(-1)),
        (
            "focal_bce",
            lambda y, p, s: (
                (1 - ((ys := y * (1 - s) + s / 2) * p + (1 - ys) * (1 - p))) ** 1.5 * _bce(ys, p)
            ).mean(-1),
        ),
        (
            "focal_cce",
            lambda y, p, s: (0.25 * (1 - p) ** 1.5 * -(y * (1 - s) + s / 3) * np.log(p)).sum(-1),
        ),
    ],
)
def test_losses_match_their_formulas(loss, reference):
    fn = make_loss(
        train_cfg(f"train.loss={loss}", "train.label_smoothing=0.1", "train.focal_gamma=1.5")
    )
    per_row = [reference(Y[i : i + 1], P[i : i + 1], 0.1).item() for i in range(3)]
    assert float(fn(Y, P)) == pytest.approx(np.mean(per_row), rel=1e-4)


@pytest.mark.backends
def test_focal_with_gamma_zero_is_cross_entropy():
    focal = make_loss(train_cfg("train.loss=focal_bce", "train.focal_gamma=0"))
    assert float(focal(Y, P)) == pytest.approx(
        float(make_loss(train_cfg("train.loss=bce"))(Y, P)), rel=1e-5
    )


@pytest.mark.backends
def test_optimizers():
    adamw = make_optimizer(train_cfg("train.optimizer=adamw", "train.weight_decay=0.01"), 1e-3)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.01
    assert type(make_optimizer(train_cfg(), 1e-3)) is keras.optimizers.Adam


# ------------------------------------------------------------------ callbacks


def tiny_model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")], name="tiny")
    model.compile(keras.optimizers.Adam(WarmupDecay(0.01, 10, 2)), "mse")
    return model


XS = np.random.default_rng(0).random((10, 3)).astype("float32")
YS = np.random.default_rng(1).random((10, 2)).astype("float32")


class StopAt(keras.callbacks.Callback):
    """Raise at the end of training step `step` (counted from 1): a crash mid-epoch."""

    def __init__(self, step):
        super().__init__()
        self.step, self.seen = step, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.step:
            raise RuntimeError("killed")


def test_backup_resumes_at_the_step_of_the_last_backup(tmp_path):
    best = cb.BestCheckpoint(str(tmp_path / "best.keras"), "loss")
    best.best, best.best_epoch = 0.5, 0
    backup = cb.Backup(
        str(tmp_path / "backup"), steps_per_epoch=5, every_steps=2, trackers={"best": best}
    )
    model = tiny_model()
    with pytest.raises(
        RuntimeError, match="killed"
    ):  # epoch 0 done; epoch 1 dies after its 3rd step
        model.fit(
            XS, YS, batch_size=2, epochs=2, shuffle=False, verbose=0, callbacks=[backup, StopAt(8)]
        )
    state = json.loads((tmp_path / "backup" / cb.STATE).read_text())
    # saved after epoch 0 (step 5), then at step 7 (2 steps later), not at 8 (the crash came first)
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 2, 7)
    assert sorted(os.listdir(tmp_path / "backup")) == ["ckpt-000000007.keras", cb.STATE]

    reference = tiny_model()  # the same 7 steps without a crash
    reference.fit(XS, YS, batch_size=2, epochs=1, shuffle=False, verbose=0)
    reference.fit(XS[:4], YS[:4], batch_size=2, epochs=1, shuffle=False, verbose=0)

    restored_best = cb.BestCheckpoint(str(tmp_path / "best.keras"), "loss")
    again = cb.Backup(str(tmp_path / "backup"), 5, 2, trackers={"best": restored_best})
    fresh = tiny_model(seed=3)
    assert again.restore(fresh)["global_step"] == 7
    assert int(fresh.optimizer.iterations) == 7 and again.resume_at == (1, 2)
    assert restored_best.best == 0.5
    for a, b in zip(fresh.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    for a, b in zip(fresh.optimizer.variables, reference.optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    # the rest of epoch 1 (3 steps) counts from step 2 of it
    fresh.fit(
        XS[:6],
        YS[:6],
        batch_size=2,
        initial_epoch=1,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[again],
    )
    assert json.loads((tmp_path / "backup" / cb.STATE).read_text())["global_step"] == 10
    with pytest.raises(BirdtpuError, match="backup was made at 5 steps per epoch, this run has 4"):
        cb.Backup(str(tmp_path / "backup"), 4).restore(tiny_model())
    again.clear()
    assert not (tmp_path / "backup").exists()


def test_best_checkpoint_and_early_stop_follow_the_monitor(tmp_path):
    model = tiny_model()
    best = cb.BestCheckpoint(str(tmp_path / "model.keras"), "val_auc")
    early = cb.EarlyStop("val_auc", patience=2)
    for cbk in (best, early):
        cbk.set_model(model)
    for epoch, auc in enumerate([0.6, 0.7, float("nan"), 0.65, 0.69]):
        best.on_epoch_end(epoch, {"val_auc": auc})
        early.on_epoch_end(epoch, {"val_auc": auc})
        if epoch == 1:
            saved = (tmp_path / "model.keras").stat().st_mtime_ns
        if model.stop_training:
            break
    assert (best.best, best.best_epoch) == (0.7, 1) and (
        tmp_path / "model.keras"
    ).stat().st_mtime_ns == saved
    assert early.stopped_epoch == 3 and epoch == 3  # two epochs without a better value
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no temporary left behind
    loss = cb.BestCheckpoint(str(tmp_path / "l.keras"), "val_loss")
    loss.set_model(model)
    loss.on_epoch_end(0, {"val_loss": 1.0})
    loss.on_epoch_end(1, {"val_loss": 2.0})
    assert loss.best == 1.0
    with pytest.raises(
        BirdtpuError, match="train.monitor: 'val_auc' is not among the logged metrics"
    ):
        best.on_epoch_end(5, {"val_loss": 1.0})


def test_history_writes_csv_and_png_and_keeps_earlier_epochs_on_resume(tmp_path):
    model = tiny_model()
    cfg = load_config(None, [f"output_dir={tmp_path}"])
    writer = cb.HistoryWriter(
        Tracker(cfg, str(tmp_path), log=lambda *_: None), str(tmp_path / "history.png")
    )
    model.fit(
        XS, YS, batch_size=2, epochs=3, verbose=0, validation_data=(XS, YS), callbacks=[writer]
    )
    table = pd.read_csv(tmp_path / "history.csv")
    assert list(table.epoch) == [0, 1, 2] and {"lr", "loss", "val_loss"} <= set(table.columns)
    assert table.lr.iloc[0] == pytest.approx(float(WarmupDecay(0.01, 10, 2)(5)))  # after 5 steps
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    resumed = Tracker(cfg, str(tmp_path), log=lambda *_: None)  # a resumed run logs epoch 2 again
    resumed.log_metrics({"epoch": 2, "loss": 0.5})
    assert [r["epoch"] for r in resumed.rows] == [0, 1, 2]
    assert pd.read_csv(tmp_path / "history.csv").loss.iloc[-1] == 0.5


# ------------------------------------------------------------------ out-of-fold tables and folds


def test_oof_tables_binarise_truth_and_combine_the_rows_of_a_recording():
    said = []
    pred, true = oof_tables(
        np.array([[1, 0.5], [0, 0], [0, 1], [0, 0]]),  # b: a tp box of y, an fp box (all zero)
        np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.3], [0.7, 0.1]]),
        ["a", "b", "b", "c"],
        ["x", "y"],
        said.append,
    )
    assert list(pred.columns) == list(true.columns) == ["row_id", "x", "y"]
    assert pred.row_id.tolist() == true.row_id.tolist() == ["a", "b", "c"]
    assert pred[["x", "y"]].to_numpy().tolist() == [[0.9, 0.1], [0.6, 0.8], [0.7, 0.1]]
    assert true[["x", "y"]].to_numpy().tolist() == [[1, 1], [0, 1], [0, 0]]
    assert "4 validation rows are 3 recordings" in said[0]


def test_parse_folds_and_fold_config():
    assert cv.parse_folds("all", 3) == [0, 1, 2] and cv.parse_folds("2,0", 5) == [0, 2]
    for bad in ("3", "x", ""):
        with pytest.raises(ConfigError, match="--folds"):
            cv.parse_folds(bad, 3)
    cfg = load_config(None, ["name=r", "output_dir=/o"])
    sub = cv.fold_config(cfg, 2)
    assert sub.run_dir == "/o/r/fold2" and sub.data.fold == 2 and sub.shard_dir == cfg.shard_dir
    assert cfg.shard_dir.startswith("/o/shard-cache/birdclef-")  # every fold reads the run's set


@pytest.mark.slow
def test_cli_folds_all_writes_pooled_oof_and_truth_for_the_stacker(tmp_path, tiny_data):
    from birdtpu.ensemble import oof_inputs
    from birdtpu.metrics import read_table

    root, _ = tiny_data
    sets = [
        x
        for o in tiny_overrides(
            tmp_path,
            f"data.root={root}",
            "model.name=fat2019",
            "model.width=0.125",
            "train.epochs=1",
            "train.steps_per_epoch=2",
            "tracking.wandb=disabled",
        )
        for x in ("--set", o)
    ]
    out = subprocess.run(
        [sys.executable, "-m", "birdtpu.cli", "fit", *sets, "--folds", "all"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "runs" / "tiny"
    oof, truth = pd.read_csv(run / "oof.csv"), pd.read_csv(run / "truth.csv")
    per_fold = [pd.read_csv(run / f"fold{k}" / f"oof_fold{k}.csv") for k in range(3)]
    assert len(oof) == 18 == sum(map(len, per_fold)) and oof.row_id.is_unique  # every clip once
    assert oof.row_id.tolist() == truth.row_id.tolist() and set(
        truth.iloc[:, 1:].to_numpy().ravel()
    ) <= {0, 1}
    for k in range(3):
        assert (run / f"fold{k}" / "model.keras").exists() and (
            run / f"fold{k}" / "history.png"
        ).exists()
    assert json.loads((run / "cv.json").read_text())["oof_rows"] == 18
    y, x, classes, _ = oof_inputs(
        read_table(str(run / "truth.csv")), [read_table(str(run / "oof.csv"))] * 2, ["a", "b"]
    )
    assert x.shape == (18, 3, 2) and len(classes) == 3
    again = subprocess.run(
        [sys.executable, "-m", "birdtpu.cli", "fit", *sets, "--folds", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert again.returncode == 0 and "fold1 is already trained" in again.stderr


def test_steps_per_execution_is_capped_at_the_epoch():
    """A TPU recipe's steps_per_execution (32) on a 2-step epoch would run 32 steps an epoch and
    overshoot the schedule: it is capped at the epoch's steps, with a log line."""
    from birdtpu.train.fit import compile_model

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    said = []
    compile_model(
        model, load_config(None, ["train.steps_per_execution=32"]), 2, 4, False, 2, said.append
    )
    assert model.steps_per_execution == 2
    assert "fit: train.steps_per_execution 32 is more than the 2 steps of an epoch: 2 used" in said
