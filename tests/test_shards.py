import hashlib
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from birdtpu import io
from birdtpu.config import load_config
from birdtpu.data.audio import load_audio
from birdtpu.data.shards import parse_example
from birdtpu.data.prepare import ensure_shards, load_catalog
from birdtpu.data.shards import MANIFEST, read_manifest, shard_paths
from birdtpu.errors import DataError
from conftest import tiny_overrides


def quiet(*_):
    pass


def cfg_for(tiny_data, tmp_path, *extra):
    root, _ = tiny_data
    return load_config(None, tiny_overrides(tmp_path, f"data.root={root}", *extra))


def digests(folder):
    return {n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(folder)) if n.endswith(".tfrec")}


def test_shards_hold_the_decoded_audio(tiny_data, tmp_path):
    cfg = cfg_for(tiny_data, tmp_path)
    manifest = ensure_shards(cfg, quiet)
    df, classes = load_catalog(cfg)
    assert manifest["examples"] == len(df) == 18 and manifest["classes"] == classes
    assert sum(manifest["per_class"].values()) == 18 and set(manifest["per_fold"]) == {"0", "1", "2"}
    assert len(manifest["shards"]) > 3 and not manifest["skipped"]
    by_id = {r.filename: r for r in df.itertuples()}
    seen = 0
    for path in shard_paths(cfg.shard_dir, manifest):
        for record in tf.data.TFRecordDataset(path):
            ex = parse_example(record, len(classes))
            row = by_id[ex["id"].numpy().decode()]
            wave, _ = load_audio(row.filepath, 16000)
            np.testing.assert_allclose(ex["audio"].numpy(), wave, atol=1 / 32000)
            assert ex["target"].numpy()[classes.index(row.label)] == 1.0
            assert int(ex["fold"]) == row.fold and int(ex["sample_rate"]) == 16000
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
    open(os.path.join(b.shard_dir, f".{names[1]}.tmp-dead"), "wb").write(b"half")
    kept = {n: os.stat(os.path.join(b.shard_dir, n)).st_mtime_ns for n in names[2::2]}
    lines = []
    ensure_shards(b, lines.append)
    assert any("resuming" in line for line in lines)
    assert digests(a.shard_dir) == digests(b.shard_dir)
    assert all(os.stat(os.path.join(b.shard_dir, n)).st_mtime_ns == t for n, t in kept.items())


def test_bad_recordings_are_skipped_and_listed(tiny_data, tmp_path):
    root, _ = tiny_data
    data = tmp_path / "data"
    shutil.copytree(root, data)
    meta = (data / "train_metadata.csv").read_text().splitlines()
    first, second = meta[1].split(",")[-1], meta[2].split(",")[-1]
    (data / "train_audio" / first).write_bytes(b"OggS broken")
    import soundfile as sf
    sf.write(str(data / "train_audio" / second).replace(".ogg", ".wav"), np.zeros(1000), 16000)
    os.replace(str(data / "train_audio" / second).replace(".ogg", ".wav"), data / "train_audio" / second)
    cfg = load_config(None, tiny_overrides(tmp_path, f"data.root={data}"))
    lines = []
    manifest = ensure_shards(cfg, lines.append)
    skipped = {os.path.basename(s["file"]): s["reason"] for s in manifest["skipped"]}
    assert manifest["examples"] == 16 and len(skipped) == 2
    assert skipped[os.path.basename(first)].startswith("unreadable")
    assert skipped[os.path.basename(second)] == "all samples are zero"
    assert sum(line.startswith("shard: skip ") for line in lines) == 2 and "2 skipped" in lines[-1]


def test_manifest_checks(tiny_data, tmp_path):
    cfg = cfg_for(tiny_data, tmp_path)
    manifest = ensure_shards(cfg, quiet)
    with pytest.raises(DataError, match="built with other data/shard settings"):
        ensure_shards(load_config(None, tiny_overrides(tmp_path, f"data.root={tiny_data[0]}",
                                                         "data.sample_rate=22050")), quiet)
    os.remove(os.path.join(cfg.shard_dir, manifest["shards"][0]["file"]))
    with pytest.raises(DataError, match="missing; rerun `birdtpu shard`"):
        shard_paths(cfg.shard_dir, manifest)
    io.write_json(os.path.join(cfg.shard_dir, MANIFEST), {**manifest, "schema_version": 99})
    with pytest.raises(DataError, match="schema version 99 is not supported"):
        read_manifest(cfg.shard_dir)
