import os

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import tensorflow as tf
from conftest import REAL_CLIPS, tiny_overrides

from birdtpu.config import AugmentConfig, ShardConfig, load_config
from birdtpu.data.audio import load_audio
from birdtpu.data.crops import crop_start, pad_to, reweight_secondary, trim_bounds
from birdtpu.data.pipeline import build_dataset, build_file_dataset
from birdtpu.data.prepare import ensure_shards
from birdtpu.data.shards import build_shards, shard_paths
from birdtpu.errors import DataError

QUIET = AugmentConfig(noise_prob=0.0, mixup_prob=0.0)  # no waveform changes: crops only
RATE = 16000


@pytest.fixture(scope="module")
def shards(tiny_data, tmp_path_factory):
    """(config, shard paths) of the tiny dataset at 16 kHz, 2-s clips."""
    cfg = load_config(
        None, tiny_overrides(tmp_path_factory.mktemp("pipe"), f"data.root={tiny_data[0]}")
    )
    return cfg, shard_paths(cfg.shard_dir, ensure_shards(cfg, lambda *_: None))


def ids_of(dataset):
    return [i.decode() for *_, batch in dataset for i in batch.numpy()]


def first(dataset, n=1):
    return [[np.asarray(t) for t in batch] for batch in dataset.take(n)]


def test_crop_and_pad_policies_are_static_and_keep_the_audio():
    wave = tf.range(1, 11, dtype=tf.float32)
    assert pad_to(wave[:3], 5).numpy().tolist() == [1, 2, 3, 0, 0]
    assert pad_to(wave[:3], 7, "repeat").numpy().tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert int(crop_start(10, 4, "start", None)) == 0
    starts, offsets = set(), set()
    for i in range(30):
        starts.add(int(crop_start(10, 4, "random", tf.constant([i, 0]))))
        padded = pad_to(wave[:3], 6, "random", seed=[i, 1]).numpy()
        assert padded.shape == (6,) and padded[padded > 0].tolist() == [1, 2, 3]
        offsets.add(int(np.argmax(padded > 0)))
    assert starts == set(range(7)) and offsets == {0, 1, 2, 3}


def test_trim_matches_librosa_on_a_real_recording():
    wave, _ = load_audio(os.path.join(REAL_CLIPS, "363.wav"))
    padded = np.concatenate([np.zeros(20000, np.float32), wave, np.zeros(30000, np.float32)])
    for top_db in (20.0, 40.0):
        _, (start, end) = librosa.effects.trim(padded, top_db=top_db)
        ours = [int(v) for v in trim_bounds(tf.constant(padded), top_db)]
        assert abs(ours[0] - start) <= 512 and abs(ours[1] - end) <= 512
        assert 20000 - 2048 <= ours[0] and ours[1] <= 20000 + len(wave) + 2048  # the padding goes


def test_secondary_labels_can_be_reweighted():
    target = tf.constant([[1.0, 0.0, 0.5, 0.5]])
    np.testing.assert_allclose(reweight_secondary(target, [0], 0.3).numpy(), [[1, 0, 0.3, 0.3]])
    np.testing.assert_allclose(reweight_secondary(target, [0], 0.0).numpy(), [[1, 0, 0, 0]])


def test_dataset_batches(shards):
    _, paths = shards
    train = build_dataset(paths, 3, 32000, 4, training=True, augment=AugmentConfig(), seed=1)
    for wave, target in train.take(3):
        assert wave.shape == (4, 32000) and target.shape == (4, 3)
        assert (target.numpy().sum(1) > 0).all()
    ids = ids_of(build_dataset(paths, 3, 32000, 4, training=False, with_ids=True))
    assert len(ids) == 18 and len(set(ids)) == 18


def test_seeded_deterministic_pipeline_repeats_exactly(shards):
    _, paths = shards
    aug = AugmentConfig(
        gain_prob=0.5, shift_prob=0.5, pink_prob=0.5, mixup_prob=0.5, cutmix_prob=0.5
    )
    runs = [
        first(build_dataset(paths, 3, 16000, 4, True, aug, seed=s, deterministic=True), 2)
        for s in (5, 5, 6)
    ]
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(runs[0][0][0], runs[2][0][0])


def test_workers_read_whole_files_of_their_own(shards):
    _, paths = shards
    assert len(paths) >= 4
    every = ids_of(build_dataset(paths, 3, 32000, 4, training=False, with_ids=True))
    parts = [
        ids_of(
            build_dataset(
                paths, 3, 32000, 4, training=False, with_ids=True, num_workers=2, worker_index=i
            )
        )
        for i in range(2)
    ]
    assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == sorted(every)
    context = tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2
    )
    assert (
        ids_of(
            build_dataset(paths, 3, 32000, 4, training=False, with_ids=True, input_context=context)
        )
        == parts[1]
    )
    few = ids_of(
        build_dataset(
            paths[:1], 3, 32000, 2, training=False, with_ids=True, num_workers=2, worker_index=1
        )
    )
    assert (
        0
        < len(few)
        < len(ids_of(build_dataset(paths[:1], 3, 32000, 2, training=False, with_ids=True)))
    )
    with pytest.raises(DataError, match="at least 2"):
        build_dataset(paths[:1], 3, 32000, 4, training=True, num_workers=2, worker_index=0)
    train = build_dataset(
        paths, 3, 32000, 4, True, QUIET, num_workers=2, worker_index=0, seed=1, with_ids=True
    )
    assert set(ids_of(train.take(10))) <= set(parts[0])


def test_mixing_settings_reach_the_batches(shards):
    _, paths = shards
    by_max = AugmentConfig(noise_prob=0.0, mixup_prob=1.0, mix_labels="max")
    _, target = first(
        build_dataset(paths, 3, 32000, 8, True, by_max, seed=2, secondary_weight=0.0)
    )[0]
    assert ((target == 1.0).sum(1) >= 1).all() and set(np.unique(target)) <= {0.0, 1.0}
    assert ((target > 0).sum(1) == 2).any()
    by_weight = AugmentConfig(noise_prob=0.0, mixup_prob=0.0, cutmix_prob=1.0)
    _, target = first(
        build_dataset(paths, 3, 32000, 8, True, by_weight, seed=2, secondary_weight=0.0)
    )[0]
    np.testing.assert_allclose(target.sum(1), 1.0, atol=1e-5)
    assert ((target > 0) & (target < 1)).any()


def test_background_mixing_from_audio_files_and_from_shards(shards, tmp_path):
    _, paths = shards
    folder = tmp_path / "nocall"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        sf.write(
            folder / f"bg{i}.wav", (0.2 * rng.standard_normal(RATE * 3)).astype(np.float32), RATE
        )
    plain, _ = first(build_dataset(paths, 3, 32000, 4, True, QUIET, seed=3, deterministic=True))[0]
    for source in (str(folder), os.path.dirname(paths[0]) + "/*.tfrec"):
        aug = AugmentConfig(
            noise_prob=0.0,
            mixup_prob=0.0,
            background_prob=1.0,
            background=source,
            background_snr_db=[0.0, 0.0],
        )
        mixed, _ = first(
            build_dataset(
                paths, 3, 32000, 4, True, aug, seed=3, deterministic=True, sample_rate=RATE
            )
        )[0]
        added = mixed - plain
        snr = 10 * np.log10((plain**2).mean(1) / (added**2).mean(1))
        np.testing.assert_allclose(snr, 0.0, atol=0.05)


def test_file_dataset_matches_the_shards(tiny_data, shards):
    root, _ = tiny_data
    _, paths = shards
    meta = pd.read_csv(os.path.join(root, "train_metadata.csv"))
    files = [os.path.join(root, "train_audio", f) for f in meta.filename]
    targets = np.eye(3, dtype=np.float32)[pd.factorize(meta.primary_label, sort=True)[0]]
    from_files = build_file_dataset(
        files, targets, 32000, 5, False, RATE, with_ids=True, ids=list(meta.filename)
    )
    waves = {i.decode(): w for w, _, ids in from_files for w, i in zip(w.numpy(), ids.numpy())}
    from_shards = {
        i.decode(): w
        for w, _, ids in build_dataset(paths, 3, 32000, 5, False, with_ids=True)
        for w, i in zip(w.numpy(), ids.numpy())
    }
    assert set(waves) == set(from_shards) and len(waves) == 18
    for name, wave in waves.items():
        np.testing.assert_allclose(wave, from_shards[name], atol=2e-4)
    train = build_file_dataset(
        files, targets, 32000, 4, True, RATE, augment=AugmentConfig(), seed=1
    )
    wave, target = next(iter(train))
    assert wave.shape == (4, 32000) and target.shape == (4, 3)


def test_file_dataset_skips_unreadable_files_and_crops_boxes(tmp_path):
    t = np.arange(RATE * 6) / RATE
    burst = (0.5 * np.sin(2 * np.pi * 2000 * t) * ((t >= 2.0) & (t < 2.5))).astype(np.float32)
    good = [str(tmp_path / f"call{i}.wav") for i in range(2)]
    for path in good:
        sf.write(path, burst, RATE)
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"not audio at all")
    logged = []
    ds = build_file_dataset(
        good + [str(bad)],
        np.eye(3, dtype=np.float32),
        RATE,
        2,
        False,
        RATE,
        with_ids=True,
        boxes=[[2.0, 2.5], [2.0, 2.5], [0, 1]],
        crop="box",
        log=logged.append,
    )
    ((wave, _, ids),) = list(ds)
    assert sorted(i.decode() for i in ids.numpy()) == good
    assert len(logged) == 1 and "broken.ogg" in logged[0] and "1 of 3 files skipped" in logged[0]
    loud = np.flatnonzero(np.abs(wave[0].numpy()) > 0.1)
    assert (
        abs(loud[0] - 0.25 * RATE) < 100 and abs(loud[-1] - 0.75 * RATE) < 100
    )  # box centred in 1 s
    train = build_file_dataset(
        good,
        np.eye(3, dtype=np.float32)[:2],
        RATE,
        2,
        True,
        RATE,
        boxes=[[2.0, 2.5]] * 2,
        augment=AugmentConfig(crop="box", noise_prob=0.0, mixup_prob=0.0),
        seed=4,
    )
    for wave, _ in train.take(5):
        assert (
            (np.abs(wave.numpy()) > 0.1).sum(1) == (np.abs(burst) > 0.1).sum()
        ).all()  # the whole call
    with pytest.raises(tf.errors.OpError, match="all 1 audio files are unreadable"):
        list(
            build_file_dataset(
                [str(bad)], np.eye(3, dtype=np.float32)[:1], RATE, 1, True, RATE, log=logged.append
            )
        )


def test_box_crop_from_shards_with_boxes(tmp_path):
    t = np.arange(RATE * 6) / RATE
    rows = []
    for i, start in enumerate((1.0, 4.0)):
        path = str(tmp_path / f"rec{i}.wav")
        sf.write(
            path,
            (0.5 * np.sin(2 * np.pi * 2000 * t) * ((t >= start) & (t < start + 0.5))).astype(
                np.float32
            ),
            RATE,
        )
        rows.append(
            {
                "filepath": path,
                "filename": f"rec{i}.wav",
                "label": "a",
                "fold": 0,
                "t_min": start,
                "t_max": start + 0.5,
            }
        )
    manifest = build_shards(
        pd.DataFrame(rows),
        ["a"],
        str(tmp_path / "shards"),
        RATE,
        ShardConfig(workers=1, max_seconds=10.0),
        log=lambda *_: None,
    )
    paths = shard_paths(str(tmp_path / "shards"), manifest)
    for wave in build_dataset(paths, 1, RATE, 2, False, crop="box").unbatch().map(lambda w, _: w):
        loud = np.flatnonzero(np.abs(wave.numpy()) > 0.1)
        assert abs(loud[0] - 0.25 * RATE) < 100 and abs(loud[-1] - 0.75 * RATE) < 100
    with pytest.raises(DataError, match="records with a labelled box"):
        build_file_dataset(
            [rows[0]["filepath"]], np.ones((1, 1), np.float32), RATE, 1, False, RATE, crop="box"
        )


def test_cache_and_partial_batches(shards, tmp_path):
    _, paths = shards
    kept = build_dataset(paths, 3, 32000, 5, False, with_ids=True, cache=True)
    assert ids_of(kept) == ids_of(kept) and len(ids_of(kept)) == 18
    dropped = build_dataset(
        paths,
        3,
        32000,
        5,
        False,
        with_ids=True,
        drop_remainder=True,
        cache=str(tmp_path / "records.cache"),
    )
    assert len(ids_of(dropped)) == 15 and all(w.shape == (5, 32000) for w, *_ in dropped)


def test_training_crops_from_shards_are_windows_of_their_recordings(shards):
    """The shard path reads only the crop's bytes (`pcm_window`): each clip must be a slice of its record."""
    from birdtpu.data.shards import parse_example

    _, paths = shards
    full = {
        ex["id"].numpy().decode(): np.round(ex["audio"].numpy() * 32767).astype(np.int16)
        for ex in tf.data.TFRecordDataset(paths).map(lambda r: parse_example(r, 3))
    }
    for trim_db in (0.0, 40.0):  # 40: the full-parse path (trimming needs the whole recording)
        train = build_dataset(
            paths, 3, 8000, 6, True, QUIET, seed=3, with_ids=True, trim_db=trim_db
        )
        starts = set()
        for waves, _, ids in train.take(3):
            assert waves.dtype == tf.float32
            for wave, clip_id in zip(waves.numpy(), ids.numpy()):
                pcm, clip = full[clip_id.decode()], np.round(wave * 32767).astype(np.int16)
                hits = [
                    s
                    for s in range(len(pcm) - 8000 + 1)
                    if clip[0] == pcm[s] and (clip == pcm[s : s + 8000]).all()
                ]
                assert hits, clip_id
                starts.add(hits[0])
        assert len(starts) > 3  # random windows, not always the first


def test_input_workers_draw_their_own_crops():
    """Two workers reading copies of one recording must not crop it at the same places; a worker
    rerun with its seed draws the same (deterministic order: under load the parallel decode may
    otherwise hand the batch its clips in another order)."""
    path = sorted(
        os.path.join(REAL_CLIPS, f) for f in os.listdir(REAL_CLIPS) if f.endswith(".wav")
    )[0]
    targets = np.ones((4, 1), np.float32)
    crops = [
        next(
            iter(
                build_file_dataset(
                    [path] * 4,
                    targets,
                    4000,
                    2,
                    True,
                    RATE,
                    QUIET,
                    seed=9,
                    num_workers=2,
                    worker_index=w,
                    pad="constant",
                    deterministic=True,
                )
            )
        )[0].numpy()
        for w in (0, 1)
    ]
    assert not np.array_equal(crops[0], crops[1])
    again = next(
        iter(
            build_file_dataset(
                [path] * 4,
                targets,
                4000,
                2,
                True,
                RATE,
                QUIET,
                seed=9,
                num_workers=2,
                worker_index=1,
                pad="constant",
                deterministic=True,
            )
        )
    )[0].numpy()
    np.testing.assert_array_equal(again, crops[1])
