import hashlib
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import tensorflow as tf
from conftest import tiny_overrides
from test_audio import write_bad_files

from birdtpu import fs
from birdtpu.config import ShardConfig, load_config
from birdtpu.data.audio import load_audio, write_audio
from birdtpu.data.prepare import ensure_shards, load_catalog
from birdtpu.data.shards import (
    MANIFEST,
    SCHEMA_VERSION,
    build_shards,
    parse_example,
    read_manifest,
    shard_paths,
)
from birdtpu.errors import DataError
from birdtpu.progress import Progress


def quiet(*_):
    pass


def cfg_for(tiny_data, tmp_path, *extra):
    root, _ = tiny_data
    return load_config(None, tiny_overrides(tmp_path, f"data.root={root}", *extra))


def digests(folder):
    return {
        n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
        for n in sorted(os.listdir(folder))
        if n.endswith(".tfrec")
    }


def records(shard_dir, manifest, compression=""):
    """Every record of a shard set, parsed, as numpy values (in manifest order)."""
    out = []
    for path in shard_paths(shard_dir, manifest):
        for raw in tf.data.TFRecordDataset(path, compression or None):
            ex = parse_example(raw, len(manifest["classes"]))
            out.append(
                {
                    k: (v.numpy().decode() if v.dtype == tf.string else v.numpy())
                    for k, v in ex.items()
                }
            )
    return out


def catalog(paths, labels, folds, **extra) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "filepath": [str(p) for p in paths],
            "filename": [os.path.basename(p) for p in paths],
            "label": labels,
            "labels": [[x] for x in labels],
            "source": "test",
            "fold": folds,
            **extra,
        }
    )


def noise_wav(path, seconds, rate=32000, seed=0):
    """A PCM16 wav of noise: decoding at its own rate returns exactly what was written."""
    wave = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)
    write_audio(str(path), wave, rate)
    return str(path)


def test_shards_hold_the_decoded_audio(tiny_data, tmp_path):
    cfg = cfg_for(tiny_data, tmp_path)
    manifest = ensure_shards(cfg, quiet)
    df, classes = load_catalog(cfg)
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["classes"] == classes
    assert manifest["examples"] == manifest["recordings"] == manifest["inputs"] == len(df) == 18
    assert sum(manifest["per_class"].values()) == 18 and set(manifest["per_fold"]) == {
        "0",
        "1",
        "2",
    }
    assert (
        len(manifest["shards"]) > 3
        and not manifest["skipped"]
        and manifest["build"]["crop"] == "first"
    )
    by_id = {r.filename: r for r in df.itertuples()}
    seen = 0
    for ex in records(cfg.shard_dir, manifest):
        row = by_id[ex["id"]]
        wave, _ = load_audio(row.filepath, 16000)
        np.testing.assert_allclose(ex["audio"], wave, atol=1 / 32000)
        assert ex["target"][classes.index(row.label)] == 1.0 and ex["fold"] == row.fold
        assert (
            ex["sample_rate"] == 16000
            and ex["num_samples"] == len(wave)
            and ex["source"] == "birdclef"
        )
        assert (
            ex["offset"] == 0
            and ex["has_box"] == 0
            and ex["positive"] == 1
            and list(ex["box"]) == [-1] * 4
        )
        assert ex["duration"] == pytest.approx(len(wave) / 16000, abs=1e-3)
        seen += 1
    assert seen == 18
    for entry in manifest["shards"]:
        data = open(os.path.join(cfg.shard_dir, entry["file"]), "rb").read()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]


def test_deterministic_and_resumable(tiny_data, tmp_path):
    a = cfg_for(tiny_data, tmp_path, "shards.dir=" + str(tmp_path / "a"), "shards.compression=GZIP")
    b = cfg_for(tiny_data, tmp_path, "shards.dir=" + str(tmp_path / "b"), "shards.compression=GZIP")
    ensure_shards(a, quiet)
    ensure_shards(b, quiet)
    assert digests(a.shard_dir) == digests(b.shard_dir)
    # a build killed half way: some shards and sidecars missing, a temporary file left behind
    names = sorted(digests(b.shard_dir))
    for name in names[1::2]:
        os.remove(os.path.join(b.shard_dir, name))
    os.remove(os.path.join(b.shard_dir, names[0] + ".json"))
    os.remove(os.path.join(b.shard_dir, MANIFEST))
    open(os.path.join(b.shard_dir, f".{names[1]}.tmp-0123abcd"), "wb").write(b"half")
    kept = {n: os.stat(os.path.join(b.shard_dir, n)).st_mtime_ns for n in names[2::2]}
    lines = []
    manifest = ensure_shards(b, lines.append)
    assert any("resuming" in line for line in lines) and any(
        "removed 1 temporary" in line for line in lines
    )
    assert digests(a.shard_dir) == digests(b.shard_dir)
    assert all(os.stat(os.path.join(b.shard_dir, n)).st_mtime_ns == t for n, t in kept.items())
    assert not [n for n in os.listdir(b.shard_dir) if ".tmp-" in n]
    first = json.load(open(os.path.join(a.shard_dir, MANIFEST)))
    assert {**manifest, "config": None} == {**first, "config": None}


@pytest.mark.slow
@pytest.mark.parametrize("compression", ["", "GZIP"])
def test_two_workers_write_the_same_bytes_as_one(tiny_data, tmp_path, compression):
    cfg = cfg_for(tiny_data, tmp_path)
    df, classes = load_catalog(cfg)
    manifests, lines = {}, []
    for workers in (1, 2):
        shard_cfg = ShardConfig(
            target_mb=0.2,
            compression=compression,
            workers=workers,
            crop="random",
            windows=2,
            max_seconds=1.5,
        )
        manifests[workers] = build_shards(
            df,
            classes,
            str(tmp_path / f"w{workers}"),
            16000,
            shard_cfg,
            log=lines.append,
            seed=3,
            progress_every=0,
        )
    assert len(manifests[1]["shards"]) > 3 and manifests[1]["examples"] > 18
    # per-row progress comes back from the worker processes too
    assert [line for line in lines if " recordings (" in line][-1].startswith(
        "shard: 18/18 recordings (100%)"
    )
    assert digests(tmp_path / "w1") == digests(tmp_path / "w2")
    assert manifests[1] == manifests[2]


def test_corrupt_files_are_skipped_and_named(tmp_path):
    expected = write_bad_files(tmp_path)
    good = [noise_wav(tmp_path / f"good{i}.wav", 1.0, seed=i) for i in range(3)]
    paths = good + [str(tmp_path / n) for n in expected]
    df = catalog(paths, ["a", "b", "a"] + ["b"] * len(expected), [i % 2 for i in range(len(paths))])
    lines = []
    manifest = build_shards(
        df, ["a", "b"], str(tmp_path / "shards"), 32000, ShardConfig(workers=1), log=lines.append
    )
    skipped = {os.path.basename(s["file"]): s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == set(expected)
    for name, reason in expected.items():
        assert skipped[name].startswith(reason), (name, skipped[name])
        assert any(line.startswith(f"shard: skip {tmp_path / name}: ") for line in lines)
    assert manifest["examples"] == manifest["recordings"] == 3 and manifest["inputs"] == len(paths)
    assert f"{len(expected)} skipped" in lines[-2]
    assert lines[-1].startswith(
        f"shard: skipped {len(expected)} of {len(paths)} recordings: 3 truncated, 2 unreadable"
    )
    ids = sorted(r["id"] for r in records(str(tmp_path / "shards"), manifest))
    assert ids == ["good0.wav", "good1.wav", "good2.wav"]


@pytest.fixture()
def long_and_short(tmp_path):
    return noise_wav(tmp_path / "long.wav", 12.0, seed=1), noise_wav(
        tmp_path / "short.wav", 3.0, seed=2
    )


def build(tmp_path, df, name, seed=0, **cfg):
    out = str(tmp_path / name)
    manifest = build_shards(
        df,
        ["a", "b"],
        out,
        32000,
        ShardConfig(workers=1, max_seconds=4, **cfg),
        log=quiet,
        seed=seed,
    )
    return manifest, records(out, manifest)


def assert_slices_of_source(recs, sources):
    for r in recs:
        source = sources[r["id"]]
        start = int(round(r["offset"] * 32000))
        np.testing.assert_allclose(
            r["audio"], source[start : start + len(r["audio"])], atol=1.5 / 32767
        )


def test_first_and_whole_crops(tmp_path, long_and_short):
    df = catalog(
        long_and_short, ["a", "b"], [0, -1]
    )  # -1: trained on in every fold, never validated
    sources = {os.path.basename(p): load_audio(p)[0] for p in long_and_short}
    manifest, recs = build(tmp_path, df, "first")
    assert manifest["per_fold"] == {"-1": 1, "0": 1}
    assert [
        os.path.basename(p) for p in shard_paths(str(tmp_path / "first"), manifest, exclude=[0])
    ] == ["fold-1-00000.tfrec"]
    assert {r["id"]: len(r["audio"]) for r in recs} == {
        "long.wav": 4 * 32000,
        "short.wav": 3 * 32000,
    }
    assert manifest["total_seconds"] == 7.0
    assert {r["id"]: r["duration"] for r in recs} == {"long.wav": 12, "short.wav": 3}
    assert_slices_of_source(recs, sources)
    manifest, recs = build(tmp_path, df, "whole", crop="whole")
    assert {r["id"]: len(r["audio"]) for r in recs} == {
        "long.wav": 12 * 32000,
        "short.wav": 3 * 32000,
    }
    assert_slices_of_source(recs, sources)


def test_random_windows_are_seeded_slices(tmp_path, long_and_short):
    df = catalog(long_and_short, ["a", "b"], [0, 0])
    sources = {os.path.basename(p): load_audio(p)[0] for p in long_and_short}
    manifest, recs = build(tmp_path, df, "r0", crop="random", windows=3)
    long = [r for r in recs if r["id"] == "long.wav"]
    assert len(long) == 3 and manifest["examples"] == 4 and manifest["recordings"] == 2
    assert all(len(r["audio"]) == 4 * 32000 and 0 <= r["offset"] <= 8 for r in long)
    assert len({float(r["offset"]) for r in long}) == 3
    assert_slices_of_source(recs, sources)
    again, _ = build(tmp_path, df, "r0-again", crop="random", windows=3)
    other, other_recs = build(tmp_path, df, "r1", seed=1, crop="random", windows=3)
    assert digests(tmp_path / "r0") == digests(tmp_path / "r0-again")
    assert sorted(r["offset"] for r in other_recs if r["id"] == "long.wav") != sorted(
        r["offset"] for r in long
    )
    # a recording listed twice (upsampled) gets other windows the second time
    twice, twice_recs = build(
        tmp_path,
        catalog([long_and_short[0]] * 2, ["a", "a"], [0, 0]),
        "twice",
        crop="random",
        windows=2,
    )
    assert len({float(r["offset"]) for r in twice_recs}) == 4


@pytest.mark.parametrize("marker", ["positive", "is_tp"])
def test_box_windows_hold_their_box(tmp_path, long_and_short, marker):
    long, short = long_and_short
    flags = [True, False, True, True] if marker == "positive" else ["True", "false", "", "1"]
    df = catalog(
        [long, long, long, short],
        ["a", "b", "b", "a"],
        [0, 0, 1, 1],
        t_min=[6.0, 1.0, np.nan, 0.5],
        t_max=[7.0, 2.5, np.nan, 1.0],
        f_min=[1000.0, 300.0, np.nan, np.nan],
        f_max=[2000.0, 900.0, np.nan, np.nan],
        **{marker: flags},
    )
    targets = np.array([[1, 0], [0, 0], [0, 1], [1, 0]], np.float32)
    sources = {os.path.basename(p): load_audio(p)[0] for p in long_and_short}
    out = str(tmp_path / "boxes")
    manifest = build_shards(
        df,
        ["a", "b"],
        out,
        32000,
        ShardConfig(workers=1, max_seconds=4, crop="boxes"),
        targets=targets,
        log=quiet,
    )
    recs = records(out, manifest)
    assert_slices_of_source(recs, sources)
    by_box = {tuple(np.round(r["box"][2:])): r for r in recs if r["has_box"]}
    tp, fp = by_box[(1000, 2000)], by_box[(300, 900)]
    for r, (t0, t1) in ((tp, (6.0, 7.0)), (fp, (1.0, 2.5))):
        assert len(r["audio"]) == 4 * 32000 and 0 <= r["box"][0] < r["box"][1] <= 4
        assert r["offset"] + r["box"][:2] == pytest.approx([t0, t1], abs=1e-3)
    assert (
        tp["positive"] == 1
        and fp["positive"] == 0
        and not fp["target"].any()
        and tp["target"][0] == 1
    )
    plain = [r for r in recs if not r["has_box"]]
    assert len(plain) == 1 and plain[0]["offset"] == 0 and plain[0]["positive"] == 1
    assert len(plain[0]["audio"]) == 4 * 32000
    short_rec = [r for r in recs if r["id"] == "short.wav"][0]
    assert list(short_rec["box"][:2]) == [0.5, 1.0] and len(short_rec["audio"]) == 3 * 32000
    assert manifest["per_class"] == {"a": 2, "b": 1} and manifest["negatives"] == {"b": 1}


def test_catalog_problems_are_named(tmp_path, long_and_short):
    df = catalog(long_and_short, ["a", "b"], [0, 1])
    cfg = ShardConfig(workers=1)
    out = str(tmp_path / "s")
    with pytest.raises(DataError, match="no column.*fold.*assign folds"):
        build_shards(df.drop(columns="fold"), ["a", "b"], out, 32000, cfg, log=quiet)
    with pytest.raises(DataError, match="labels not in the label map: b"):
        build_shards(df, ["a"], out, 32000, cfg, log=quiet)
    with pytest.raises(
        DataError, match=r"catalog row 1 \(.*short.wav\): fold 'x' is not an integer >= -1"
    ):
        build_shards(df.assign(fold=[0, "x"]), ["a", "b"], out, 32000, cfg, log=quiet)
    with pytest.raises(
        DataError, match=r"catalog row 0 \(.*long.wav\): fold -2 is not an integer >= -1"
    ):
        build_shards(df.assign(fold=[-2, 0]), ["a", "b"], out, 32000, cfg, log=quiet)
    with pytest.raises(
        DataError, match=r"catalog row 0 .*box t_min 5.0 - t_max nan is not a time span"
    ):
        build_shards(
            df.assign(t_min=[5.0, np.nan], t_max=[np.nan, np.nan]),
            ["a", "b"],
            out,
            32000,
            cfg,
            log=quiet,
        )
    with pytest.raises(DataError, match="crop is 'boxes' but the catalog has no t_min/t_max"):
        build_shards(df, ["a", "b"], out, 32000, ShardConfig(workers=1, crop="boxes"), log=quiet)
    with pytest.raises(DataError, match="positive 'maybe' is not true/false"):
        build_shards(df.assign(positive=["maybe", True]), ["a", "b"], out, 32000, cfg, log=quiet)
    with pytest.raises(DataError, match=r"targets have shape \(2, 3\)"):
        build_shards(df, ["a", "b"], out, 32000, cfg, targets=np.ones((2, 3)), log=quiet)


def test_shards_of_another_plan_are_rewritten_not_reused(tmp_path, long_and_short):
    df = catalog(long_and_short, ["a", "b"], [0, 1])
    out = str(tmp_path / "s")
    build_shards(df, ["a", "b"], out, 32000, ShardConfig(workers=1, max_seconds=4), log=quiet)
    os.remove(
        os.path.join(out, MANIFEST)
    )  # as if killed before the manifest, then rerun with other settings
    lines = []
    manifest = build_shards(
        df, ["a", "b"], out, 32000, ShardConfig(workers=1, max_seconds=2), log=lines.append
    )
    assert not any("resuming" in line for line in lines)
    assert manifest["total_seconds"] == 4.0 and all(
        len(r["audio"]) == 64000 for r in records(out, manifest)
    )


def test_manifest_checks(tiny_data, tmp_path):
    cfg = cfg_for(tiny_data, tmp_path)
    manifest = ensure_shards(cfg, quiet)
    other = tiny_overrides(tmp_path, f"data.root={tiny_data[0]}", "data.sample_rate=22050")
    # in the cache another sample rate is another set; an explicit shards.dir is refused
    assert load_config(None, other).shard_dir != cfg.shard_dir
    with pytest.raises(DataError, match="built with other data/shard settings"):
        ensure_shards(load_config(None, [*other, f"shards.dir={cfg.shard_dir}"]), quiet)
    os.remove(os.path.join(cfg.shard_dir, manifest["shards"][0]["file"]))
    with pytest.raises(DataError, match="missing; rerun `birdtpu shard`"):
        shard_paths(cfg.shard_dir, manifest)
    fs.write_json(os.path.join(cfg.shard_dir, MANIFEST), {**manifest, "schema_version": 1})
    with pytest.raises(
        DataError,
        match=r"schema version 1 is not supported \(this birdtpu reads version 2\); "
        r"rebuild the shards \(`birdtpu shard --rebuild`\)",
    ):
        read_manifest(cfg.shard_dir)
    open(os.path.join(cfg.shard_dir, MANIFEST), "w").write("{not json")
    with pytest.raises(DataError, match="manifest.json: not valid JSON"):
        read_manifest(cfg.shard_dir)


def test_shards_through_gfile(tmp_path, long_and_short):
    out = "ram://birdtpu-test-shards/set"
    df = catalog(long_and_short, ["a", "b"], [0, 1])
    try:
        built = build_shards(
            df, ["a", "b"], out, 16000, ShardConfig(workers=1, compression="GZIP"), log=quiet
        )
        manifest = read_manifest(out)
        assert manifest == built and len(records(out, manifest, "GZIP")) == 2
        assert not [n for n in tf.io.gfile.listdir(out) if ".tmp-" in n]
    finally:
        tf.io.gfile.rmtree("ram://birdtpu-test-shards")


def test_plain_progress_lines(tmp_path, long_and_short, capsys):
    lines = []
    df = catalog(list(long_and_short) * 3, ["a", "b"] * 3, [0, 1] * 3)
    build_shards(
        df,
        ["a", "b"],
        str(tmp_path / "s"),
        32000,
        ShardConfig(workers=1),
        log=lines.append,
        progress_every=0,
    )
    progress = [line for line in lines if " recordings (" in line]
    assert progress[0].startswith("shard: 1/6 recordings (17%)")
    assert progress[-1].startswith("shard: 6/6 recordings (100%)")
    assert "audio-h/min" in progress[-1]
    bar = Progress(4, lines.append, tty=True)  # a terminal gets a tqdm bar; messages print above it
    bar.advance(2, 30.0)
    bar.message("shard: a message")
    bar.close()
    assert lines[-1] == "shard: a message" and "shard:" in capsys.readouterr().err


def test_tiny_dataset_copy_with_broken_files(tiny_data, tmp_path):
    root, _ = tiny_data
    data = tmp_path / "data"
    shutil.copytree(root, data)
    meta = (data / "train_metadata.csv").read_text().splitlines()
    first, second = meta[1].split(",")[-1], meta[2].split(",")[-1]
    (data / "train_audio" / first).write_bytes(b"OggS broken")
    sf.write(str(data / "train_audio" / second), np.zeros(1000), 16000, format="OGG")
    cfg = load_config(None, tiny_overrides(tmp_path, f"data.root={data}"))
    lines = []
    manifest = ensure_shards(cfg, lines.append)
    skipped = {os.path.basename(s["file"]): s["reason"] for s in manifest["skipped"]}
    assert manifest["examples"] == 16 and len(skipped) == 2
    assert skipped[os.path.basename(first)].startswith(("unreadable", "truncated"))
    assert skipped[os.path.basename(second)] == "all samples are zero"
    assert sum(line.startswith("shard: skip ") for line in lines) == 2 and "2 skipped" in lines[-2]
    assert lines[-1] == (
        "shard: skipped 2 of 18 recordings: 1 all samples are zero, 1 unreadable "
        "(listed in manifest.json)"
    )
