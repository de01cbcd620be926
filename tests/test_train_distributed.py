"""A 2-replica MirroredStrategy run on two logical CPU devices follows the 1-replica run with the
same global batch: the same losses epoch by epoch and the same validation predictions.

Each run is its own `birdtpu fit` process: the CPU split must happen before TensorFlow starts.
Every random draw that depends on the replica count is switched off (augmentation, dropout) and
BatchNorm uses global-batch statistics (`model.sync_bn`), so the two runs compute the same thing.
The clip order is fixed too (one training shard, no record shuffling): under a strategy, Keras
draws one batch to build the model and then restarts the dataset, which reshuffles it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 6  # 9 validation clips: 6 + 3, so no replica gets an empty batch
STILL = [
    "data.num_folds=2",
    "shards.target_mb=100",
    "train.shuffle_buffer=1",  # one training shard, fixed order
    "augment.noise_prob=0",
    "augment.mixup_prob=0",
    "augment.freq_masks=0",
    "augment.time_masks=0",
    "augment.crop=start",
    "augment.pad=constant",
    "model.dropout=0",
    "model.backbone_dropout=0",
]


def _fit(tmp_path, root, replicas: int):
    name = f"r{replicas}"
    sets = tiny_overrides(
        tmp_path,
        f"data.root={root}",
        f"name={name}",
        f"shards.dir={tmp_path}/shards",
        "model.name=fat2019",
        "model.width=0.125",
        "model.sync_bn=true",
        *STILL,
        "runtime.deterministic=true",
        f"runtime.cpu_replicas={replicas}",
        f"train.batch_size={GLOBAL_BATCH // replicas}",
        "train.epochs=3",
        "train.steps_per_epoch=2",
    )
    out = subprocess.run(
        [sys.executable, "-m", "birdtpu.cli", "fit", *[x for o in sets for x in ("--set", o)]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        f"over {replicas} cpu device(s)" in out.stderr
        and f"steps/epoch of {GLOBAL_BATCH}" in out.stderr
    )
    run = tmp_path / "runs" / name
    return pd.read_csv(run / "history.csv"), pd.read_csv(run / "oof_fold0.csv")


@pytest.mark.slow
def test_two_replicas_follow_one_replica_with_the_same_global_batch(tmp_path, tiny_data):
    root, _ = tiny_data
    one_hist, one_oof = _fit(tmp_path, root, 1)
    two_hist, two_oof = _fit(tmp_path, root, 2)
    assert len(one_hist) == 3
    assert np.ptp(one_hist["loss"]) > 1e-3  # the loss moves, so matching it means something
    np.testing.assert_allclose(two_hist["loss"], one_hist["loss"], rtol=2e-4)
    np.testing.assert_allclose(two_hist["val_loss"], one_hist["val_loss"], rtol=2e-4)
    np.testing.assert_allclose(two_hist["lr"], one_hist["lr"], rtol=1e-6)
    assert two_oof.row_id.tolist() == one_oof.row_id.tolist()
    np.testing.assert_allclose(
        two_oof.iloc[:, 1:].to_numpy(), one_oof.iloc[:, 1:].to_numpy(), atol=2e-4
    )
