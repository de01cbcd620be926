import numpy as np
import tensorflow as tf

from birdtpu.config import AugmentConfig, load_config
from birdtpu.data.pipeline import build_dataset, crop_or_pad, mixup
from birdtpu.data.prepare import ensure_shards
from birdtpu.data.shards import shard_paths
from conftest import tiny_overrides


def test_crop_and_pad_are_static_and_keep_the_audio():
    wave = tf.range(1, 11, dtype=tf.float32)
    assert crop_or_pad(wave, 4, training=False).numpy().tolist() == [1, 2, 3, 4]
    assert crop_or_pad(wave[:3], 5, training=False).numpy().tolist() == [1, 2, 3, 0, 0]
    for _ in range(20):
        crop = crop_or_pad(wave, 4, training=True).numpy()
        assert crop.shape == (4,) and np.all(np.diff(crop) == 1)
        padded = crop_or_pad(wave[:3], 6, training=True).numpy()
        assert padded.shape == (6,) and padded[padded > 0].tolist() == [1, 2, 3]


def test_mixup_uses_one_lambda_per_example():
    tf.random.set_seed(0)
    wave = tf.constant(np.eye(8, dtype=np.float32)[np.arange(64) % 8])  # example i: unit vector i % 8
    target = tf.constant(np.eye(4, dtype=np.float32)[np.arange(64) % 4])
    mixed_w, mixed_t = mixup(wave, target, prob=1.0, alpha=0.5)
    lam = mixed_t.numpy().max(axis=1)
    assert np.all(lam >= 0.5 - 1e-6) and len(np.unique(np.round(lam, 5))) > 10
    np.testing.assert_allclose(mixed_t.numpy().sum(1), target.numpy().sum(1) * lam
                               + np.roll(target.numpy(), 1, 0).sum(1) * (1 - lam), atol=1e-6)
    unchanged, _ = mixup(wave, target, prob=0.0, alpha=0.5)
    np.testing.assert_array_equal(unchanged.numpy(), wave.numpy())


def test_dataset_batches(tiny_data, tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, f"data.root={tiny_data[0]}"))
    manifest = ensure_shards(cfg, lambda *_: None)
    paths = shard_paths(cfg.shard_dir, manifest)
    train = build_dataset(paths, 3, 32000, 4, training=True, augment=AugmentConfig(), seed=1)
    for wave, target in train.take(3):
        assert wave.shape == (4, 32000) and target.shape == (4, 3)
        np.testing.assert_allclose(target.numpy().sum(1) > 0, True)
    evaluation = build_dataset(paths, 3, 32000, 4, training=False, with_ids=True)
    ids = [i.decode() for _, _, batch in evaluation for i in batch.numpy()]
    assert len(ids) == 18 and len(set(ids)) == 18
