"""`birdtpu pseudo`: the soft-target transform, and shards of pseudo-labelled soundscape windows
(deterministic, resumable, targets and provenance as predicted, a corrupt file skipped)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_overrides
from test_export import save_tiny_model

from birdtpu import fs
from birdtpu.cli import main
from birdtpu.config import load_config
from birdtpu.data.shards import check_shards, parse_example, read_manifest, shard_paths
from birdtpu.errors import ConfigError
from birdtpu.infer.predict import predict_recordings
from birdtpu.infer.pseudo import transform, write_pseudo
from birdtpu.infer.recordings import list_recordings
from birdtpu.infer.runners import open_model

P = np.array([[0.5, 0.25, 0.04], [0.81, 0.9, 0.0]], np.float32)


def test_transform_power_floor_top_k_by_hand():
    assert np.array_equal(transform(P), P)
    # p ** 2: 0.25, 0.0625, 0.0016 / 0.6561, 0.81, 0
    np.testing.assert_allclose(
        transform(P, power=2.0), [[0.25, 0.0625, 0.0016], [0.6561, 0.81, 0.0]], rtol=1e-6
    )
    # p ** 0.5: 0.70711, 0.5, 0.2 / 0.9, 0.94868, 0; below 0.6 -> 0
    np.testing.assert_allclose(
        transform(P, power=0.5, floor=0.6), [[0.7071068, 0, 0], [0.9, 0.9486833, 0]], rtol=1e-6
    )
    assert transform(P, top_k=1).tolist() == np.float32([[0.5, 0, 0], [0, 0.9, 0]]).tolist()
    ties = transform(np.float32([[0.3, 0.3, 0.3]]), top_k=2)
    assert ties.tolist() == np.float32([[0.3, 0.3, 0.0]]).tolist()  # ties: the lower index
    assert transform(P, top_k=5).tolist() == P.tolist() and transform(P).dtype == np.float32


@pytest.mark.parametrize(
    "override, key",
    [
        ("pseudo.power=0", "pseudo.power"),
        ("pseudo.floor=1.5", "pseudo.floor"),
        ("pseudo.top_k=-1", "pseudo.top_k"),
        ("pseudo.files_per_shard=0", "pseudo.files_per_shard"),
    ],
)
def test_bad_settings_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key) as err:
        load_config(None, [override])
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_data):
    """Two teachers, and the tiny set's soundscapes (12 s) plus a short one and a corrupt one."""
    root = tmp_path_factory.mktemp("pseudo")
    models = [save_tiny_model(str(root / f"run{i}"), seed=i) for i in range(2)]
    scapes = root / "scapes"
    shutil.copytree(os.path.join(tiny_data[0], "soundscapes"), scapes)
    first = sorted(scapes.iterdir())[0]
    shutil.copy(first, scapes / "c_copy.ogg")
    (scapes / "b_corrupt.ogg").write_bytes(os.urandom(2000))
    return root, models, str(scapes), first.stem


def _cfg(root, out, models, *extra):
    return load_config(
        None,
        tiny_overrides(
            root,
            f"pseudo.soundscapes={os.path.abspath(str(root / 'scapes'))}",
            f"pseudo.runs=[{', '.join(models)}]",
            f"pseudo.output_dir={out}",
            "pseudo.power=1.5",
            "pseudo.floor=0.05",
            "pseudo.files_per_shard=2",
            "infer.tta_shifts=[0.5]",
            *extra,
        ),
    )


def _bytes(folder):
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder)) if n.endswith("tfrec")}


@pytest.mark.slow
def test_shards_are_deterministic_resumable_and_hold_the_transformed_predictions(setup, tmp_path):
    root, models, scapes, stem = setup
    cfg = _cfg(root, tmp_path / "a", models)
    first = write_pseudo(cfg, lambda *_: None)
    out = tmp_path / "a" / "round-1"
    files = list_recordings(scapes)  # 2 synthetic, a copy of one, a corrupt one
    assert len(files) == 4 and first["written"] == ["pseudo-00000.tfrec", "pseudo-00001.tfrec"]

    # provenance, counts and the corrupt file
    manifest = read_manifest(str(out))
    assert manifest == {k: v for k, v in first.items() if k != "written"}
    prov = manifest["pseudo"]
    assert prov["round"] == 1 and prov["soundscapes"] == scapes
    assert [r["model"] for r in prov["runs"]] == models
    assert prov["runs"][0]["model_sha256"] == fs.sha256(models[0])
    assert prov["transform"] == {"power": 1.5, "floor": 0.05, "top_k": 0}
    assert prov["infer"]["tta_shifts"] == [0.5] and prov["infer"]["window_seconds"] == 2.0
    assert prov["files"] == 3 and prov["windows"] == manifest["examples"] == 3 * 6
    assert [s["file"] for s in prov["skipped"]] == [os.path.join(scapes, "b_corrupt.ogg")]
    assert prov["skipped"][0]["reason"] and manifest["skipped"] == prov["skipped"]
    assert manifest["per_fold"] == {"-1": 18} and not check_shards(str(out), manifest, verify=True)
    assert len(shard_paths(str(out), manifest, exclude=[0])) == 2  # trained on, every fold
    assert shard_paths(str(out), manifest, folds=[0]) == []  # never validated

    # the targets are the predictions of the blend, transformed
    runners = [open_model(m) for m in models]
    table = predict_recordings(runners, files, cfg.infer, lambda *_: None)["table"]
    expected = transform(table[manifest["classes"]].to_numpy(np.float32), 1.5, 0.05)
    expected = dict(zip(table["row_id"], expected))
    records = [
        parse_example(r, len(manifest["classes"]))
        for p in shard_paths(str(out), manifest)
        for r in tf.data.TFRecordDataset(p)
    ]
    assert [r["id"].numpy().decode() for r in records] == list(expected)
    for r in records:
        rid = r["id"].numpy().decode()
        np.testing.assert_array_equal(r["target"].numpy(), expected[rid])
        assert r["source"].numpy() == b"pseudo" and int(r["fold"]) == -1 and int(r["positive"]) == 1
        assert int(r["sample_rate"]) == 16000 and r["audio"].shape == (32000,)
        assert int(r["label"]) == int(np.argmax(expected[rid]))
        assert float(r["offset"]) == float(rid.rsplit("_", 1)[1]) - 2.0
    same = [r for r in records if r["id"].numpy().decode().startswith("c_copy")]
    twin = [r for r in records if r["id"].numpy().decode().startswith(stem + "_")]
    assert [bytes(r["audio"].numpy()) for r in same] == [bytes(r["audio"].numpy()) for r in twin]

    # a second build elsewhere: the same bytes; a rerun writes nothing
    write_pseudo(_cfg(root, tmp_path / "b", models), lambda *_: None)
    assert _bytes(out) == _bytes(tmp_path / "b" / "round-1")
    assert (out / "manifest.json").read_bytes() == (
        tmp_path / "b" / "round-1" / "manifest.json"
    ).read_bytes().replace(str(tmp_path / "b").encode(), str(tmp_path / "a").encode())
    assert write_pseudo(cfg, lambda *_: None)["written"] == []

    # resume: a deleted shard and a temporary file left by a kill -> only that shard is written
    before = _bytes(out)
    (out / "pseudo-00001.tfrec").unlink()
    (out / ".pseudo-00001.tfrec.tmp-0123abcd").write_bytes(b"partial")
    assert write_pseudo(cfg, lambda *_: None)["written"] == ["pseudo-00001.tfrec"]
    assert _bytes(out) == before and not (out / ".pseudo-00001.tfrec.tmp-0123abcd").exists()

    # another transform is another fingerprint: every shard is rewritten
    again = write_pseudo(_cfg(root, tmp_path / "a", models, "pseudo.top_k=1"), lambda *_: None)
    assert len(again["written"]) == 2


@pytest.mark.slow
def test_cli_round_and_runs(setup, tmp_path, capsys):
    root, models, scapes, _ = setup
    overrides = tiny_overrides(
        root,
        f"pseudo.soundscapes={scapes}",
        f"pseudo.output_dir={tmp_path}",
        "pseudo.files_per_shard=8",
    )
    code = main(
        [
            "pseudo",
            "--round",
            "2",
            "--runs",
            os.path.dirname(models[0]),
            *[x for o in overrides for x in ("--set", o)],
        ]
    )
    out = capsys.readouterr().out
    assert code == 1  # the corrupt soundscape
    assert f"{tmp_path}/round-2: 18 windows of 3 soundscapes in 1 shards (1 written)" in out
    assert "pseudo: skipped 1 of 4 soundscapes: 1 unreadable" in out
    prov = read_manifest(str(tmp_path / "round-2"))["pseudo"]
    assert prov["round"] == 2 and [r["model"] for r in prov["runs"]] == [models[0]]
