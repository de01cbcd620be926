"""Class balance after the split: the training pipeline samples, validation reads every clip once."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from birdtpu.config import load_config
from birdtpu.data import balance
from birdtpu.data.pipeline import build_dataset
from birdtpu.data.prepare import ensure_shards
from birdtpu.data.shards import shard_paths

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def _sampling(path: str) -> dict:
    with open(path) as fh:
        data = yaml.safe_load(fh).get("data", {})
    return {k: data[k] for k in ("min_per_class", "max_per_class") if data.get(k)}


# every recipe that samples, with its thresholds as they are where they act on 6 clips a class
# (min_per_class 50 does), scaled down where they would not (max_per_class 500 -> 4)
RECIPES = [
    (os.path.basename(p), {k: (4 if k == "max_per_class" else v) for k, v in s.items()})
    for p in sorted(glob.glob(os.path.join(CONFIGS, "*.yaml")))
    if (s := _sampling(p))
]


def test_rates_lift_rare_classes_and_thin_common_ones():
    counts = {"a": 2, "b": 10, "c": 50, "d": 0}
    rates = balance.copy_rates(counts, list(counts), 10, 20)
    np.testing.assert_allclose(rates, [5.0, 1.0, 0.4, 1.0])
    assert balance.expected_clips(62, counts, list(counts), rates) == 10 + 10 + 20


def test_balance_repeats_records_by_their_class_rate_with_a_seeded_draw():
    labels = np.repeat([0, 1, 2], 400)
    records = tf.data.Dataset.from_tensor_slices(
        {"label": labels, "positive": (np.arange(len(labels)) % 400 != 0).astype(np.int64)}
    )

    def draw(seed):
        out = balance.balance(records, [2.5, 1.0, 0.25], seed, deterministic=True)
        return np.array([int(r["label"]) for r in out])

    first = draw(7)
    np.testing.assert_array_equal(first, draw(7))
    assert not np.array_equal(first, draw(8))
    per_class = np.bincount(first, minlength=3)
    # 399 positives at rate 2.5 plus 1 negative (rate 1); 400 at 1; 399 at 0.25 plus 1 negative
    assert abs(per_class[0] - 998.5) < 40 and per_class[1] == 400
    assert abs(per_class[2] - 100.75) < 25


@pytest.mark.slow
@pytest.mark.parametrize("recipe,sampling", RECIPES, ids=[r for r, _ in RECIPES])
def test_no_validation_clip_repeats_under_the_recipe_sampling(
    tiny_data, tmp_path, recipe, sampling
):
    root, _ = tiny_data
    cfg = load_config(
        os.path.join(CONFIGS, recipe),
        [
            f"data.root={root}",
            "data.table=",
            "data.format=birdclef",
            "data.metadata=train_metadata.csv",
            "data.audio_dir=train_audio",
            "data.sample_rate=16000",
            "frontend.fmax=8000",
            "data.num_folds=3",
            "shards.target_mb=0.2",
            "shards.workers=1",
            f"output_dir={tmp_path}/runs",
            *(f"data.{k}={v}" for k, v in sampling.items()),
        ],
    )
    manifest = ensure_shards(cfg, log=lambda *_: None)
    assert manifest["examples"] == 18  # every recording once: copies are no longer in the shards
    classes, fold, samples = manifest["classes"], cfg.data.fold, 16000
    val = build_dataset(
        shard_paths(cfg.shard_dir, manifest, folds=[fold]),
        len(classes),
        samples,
        4,
        training=False,
        with_ids=True,
    )
    ids = [i.decode() for _, _, batch in val for i in batch.numpy()]
    assert len(ids) == len(set(ids)) == manifest["per_fold"][str(fold)]

    counts = balance.class_counts(manifest, fold)
    rates = balance.copy_rates(counts, classes, cfg.data.min_per_class, cfg.data.max_per_class)
    per_epoch = balance.expected_clips(sum(counts.values()), counts, classes, rates)
    train = build_dataset(
        shard_paths(cfg.shard_dir, manifest, exclude=[fold]),
        len(classes),
        samples,
        8,
        training=True,
        seed=0,
        deterministic=True,
        copies=rates,
    )
    epochs = 4
    seen = np.zeros(len(classes))
    for _, target in train.take(epochs * per_epoch // 8):
        seen += np.bincount(np.argmax(target.numpy(), axis=1), minlength=len(classes))
    target_count = (
        sampling.get("min_per_class") or sampling["max_per_class"]
    )  # every tiny class is under the minimum, or over the maximum
    np.testing.assert_allclose(seen / epochs, target_count, rtol=0.25)
