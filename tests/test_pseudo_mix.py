"""Training that mixes pseudo-labelled windows into the labelled clips (train.pseudo_ratio)."""

import types

import numpy as np
import pytest
from test_shards import catalog, noise_wav

from birdtpu import fs
from birdtpu.config import AugmentConfig, ShardConfig, load_config
from birdtpu.data.pipeline import build_dataset
from birdtpu.data.shards import (
    MANIFEST,
    SCHEMA_VERSION,
    build_shards,
    serialize_example,
    shard_paths,
    to_pcm16,
)
from birdtpu.data.shards.tfrecord import RecordWriter
from birdtpu.errors import ConfigError, DataError
from birdtpu.train.datasets import pseudo_paths, run_datasets

RATE, CLASSES = 16000, ["a", "b", "c"]
QUIET = AugmentConfig(noise_prob=0.0, mixup_prob=0.0)  # no waveform or target changes
SOFT = np.array([[0.25, 0.5, 0.125], [0.75, 0.0, 0.0625]], np.float32)  # exact in float32
WINDOW = RATE // 2  # pseudo windows of 0.5 s, padded to the 1-s clip


def write_pseudo_set(folder, classes=CLASSES, rate=RATE, shards=2, per_shard=40):
    """A set as `birdtpu pseudo` writes it: fold -1 records of noise (never a zero sample) with
    the SOFT targets in turn, and its manifest."""
    fs.makedirs(str(folder))
    entries, rng = [], np.random.default_rng(3)
    for s in range(shards):
        name = f"pseudo-{s:05d}.tfrec"
        with RecordWriter(str(folder / name)) as writer:
            for i in range(per_shard):
                pcm = to_pcm16(rng.uniform(0.1, 0.5, WINDOW).astype(np.float32))
                target = SOFT[i % 2]
                record = serialize_example(
                    pcm, rate, target, int(target.argmax()), -1, f"s{s}_{5 * i + 5}", "pseudo", 60.0
                )
                writer.write(record)
        entries.append({"file": name, "fold": -1, "examples": per_shard, "bytes": writer.bytes})
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "sample_rate": rate,
        "compression": "",
        "classes": list(classes),
        "examples": shards * per_shard,
        "shards": entries,
    }
    fs.write_json(str(folder / MANIFEST), manifest)
    return str(folder)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """(labelled shard dir, its manifest, pseudo set dir): 12 one-hot clips of 1.5 s, folds 0/1."""
    root = tmp_path_factory.mktemp("mix")
    wavs = [noise_wav(root / f"{i}.wav", 1.5, RATE, seed=i) for i in range(12)]
    df = catalog(wavs, [CLASSES[i % 3] for i in range(12)], [i % 2 for i in range(12)])
    out = str(root / "shards")
    manifest = build_shards(df, CLASSES, out, RATE, ShardConfig(workers=1), log=lambda *_: None)
    return out, manifest, write_pseudo_set(root / "pseudo" / "round-1")


def config(sets, *extra):
    labelled, _, pseudo = sets
    return load_config(
        None,
        [
            f"shards.dir={labelled}",
            f"data.sample_rate={RATE}",
            "data.num_folds=2",
            "frontend.clip_seconds=1",
            "frontend.fmax=8000",
            f"train.pseudo_shards=[{pseudo}]",
            *extra,
        ],
    )


def batches(sets, n, **kw):
    labelled, manifest, _ = sets
    paths = shard_paths(labelled, manifest)
    ds = build_dataset(paths, 3, RATE, 64, True, QUIET, seed=5, deterministic=True, **kw)
    return [(w.numpy(), t.numpy()) for w, t in ds.take(n)]


def is_pseudo(targets):
    return ((targets > 0) & (targets < 1)).any(axis=1)  # the labelled targets are one-hot


@pytest.mark.slow
def test_the_share_of_pseudo_windows_is_the_ratio(sets):
    mix, windows = pseudo_paths(config(sets), CLASSES)
    assert len(mix) == 2 and windows == 80
    for ratio in (0.3, 0.7):
        targets = np.concatenate([t for _, t in batches(sets, 32, mix_paths=mix, mix_ratio=ratio)])
        assert len(targets) == 2048 and abs(is_pseudo(targets).mean() - ratio) < 0.03


def test_ratio_zero_is_the_dataset_without_mixing(sets):
    mix, _ = pseudo_paths(config(sets), CLASSES)
    before = batches(sets, 3)
    after = batches(sets, 3, mix_paths=mix, mix_ratio=0.0)
    for (w0, t0), (w1, t1) in zip(before, after):
        assert w0.tobytes() == w1.tobytes() and t0.tobytes() == t1.tobytes()
    assert not is_pseudo(np.concatenate([t for _, t in before])).any()
    with pytest.raises(ValueError, match=r"mix_ratio 1.0 is not in \[0, 1\)"):
        batches(sets, 1, mix_paths=mix, mix_ratio=1.0)
    with pytest.raises(DataError, match="1 shard file.s. for 2 input workers"):  # whole files each
        batches(sets, 1, mix_paths=mix[:1], mix_ratio=0.5, num_workers=2, worker_index=1)


def test_soft_targets_and_padded_windows_come_through(sets):
    mix, _ = pseudo_paths(config(sets), CLASSES)
    # secondary_weight re-weights the labelled targets only; start crop, zeros after the window
    kw = dict(mix_paths=mix, mix_ratio=0.5, crop="start", pad="constant", secondary_weight=0.0)
    waves, targets = (np.concatenate(x) for x in zip(*batches(sets, 2, **kw)))
    pseudo = is_pseudo(targets)
    assert 0 < pseudo.sum() < len(targets)
    assert all(any((t == s).all() for s in SOFT) for t in targets[pseudo])
    assert (waves[pseudo][:, :WINDOW] != 0).all() and (waves[pseudo][:, WINDOW:] == 0).all()
    assert set(targets[~pseudo].sum(1)) == {1.0}


def test_run_datasets_mixes_the_sets_and_lengthens_the_epoch(sets):
    cfg = config(sets, "train.pseudo_ratio=0.25", "train.batch_size=4")
    run = types.SimpleNamespace(workers=1, backend="tensorflow", replicas=1)
    lines = []
    train, _, _, n_train = run_datasets(cfg, sets[1], 4, run, lines.append, QUIET)
    assert (
        "fit: 80 pseudo-labelled windows from 1 set(s): sampled in at ratio 0.25, MixUp'd into "
        "labelled clips with probability 0.0" in lines
    )
    assert n_train == 8  # 6 labelled training clips (fold 1) / (1 - 0.25)
    assert next(iter(train))[1].shape == (4, 3)


def test_pseudo_sets_must_match_the_run(sets, tmp_path):
    cfg = config(sets)
    other = write_pseudo_set(tmp_path / "other", classes=["a", "c", "b"])
    cfg.train.pseudo_shards = [other]
    with pytest.raises(
        DataError, match=r"other: pseudo-labels of 3 classes .* \(class 1: 'c', not 'b'\)"
    ):
        pseudo_paths(cfg, CLASSES)
    slow = write_pseudo_set(tmp_path / "slow", rate=22050)
    cfg.train.pseudo_shards = [slow]
    rate = "slow: pseudo-labels have sample_rate 22050, the run's data.sample_rate is 16000"
    with pytest.raises(DataError, match=rate):
        pseudo_paths(cfg, CLASSES)
    cfg.train.pseudo_shards = [str(tmp_path / "none")]
    with pytest.raises(DataError, match="none/manifest.json: no shard manifest"):
        pseudo_paths(cfg, CLASSES)
    with pytest.raises(ConfigError, match="train.pseudo_shards: set the pseudo-label folders"):
        load_config(None, ["train.pseudo_ratio=0.2"])
    with pytest.raises(ConfigError, match="train.pseudo_ratio: must be below 1"):
        config(sets, "train.pseudo_ratio=1")
