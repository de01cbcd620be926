"""`birdtpu embed` (issue 23): shards of teacher embeddings with provenance, resumable (a rerun
writes nothing, a deleted shard is rewritten alone, byte for byte), deterministic, corrupt
recordings skipped and counted; the Perch v2 stand-in as the teacher."""

from __future__ import annotations

import os

import numpy as np
import pytest
import teacher_models as tm
from conftest import TINY, run_cli

from birdtpu.config import load_config
from birdtpu.data.audio import load_audio
from birdtpu.teachers.embed import read_embeddings, write_embeddings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tm.save_savedmodel(str(tmp_path_factory.mktemp("teacher") / "perch_v2"))


def config(tmp_path, teacher, *more):
    return load_config(
        None,
        [
            *TINY,
            f"data.root={tmp_path}/data",
            f"output_dir={tmp_path}/runs",
            f"embed.teacher=perch:{teacher}",
            "embed.files_per_shard=5",
            "embed.batch_size=4",
            *more,
        ],
    )


def shard_bytes(folder) -> dict[str, bytes]:
    return {
        n: open(os.path.join(folder, n), "rb").read()
        for n in sorted(os.listdir(folder))
        if n.endswith((".tfrec", ".json"))
    }


def test_embed_resumes_by_shard_and_writes_the_same_bytes(tmp_path, teacher):
    cfg = config(tmp_path, teacher)
    first = write_embeddings(cfg, log=lambda m: None)
    out = first["dir"]
    assert out == f"{tmp_path}/runs/embeddings/perch-perch_v2-catalog"
    assert len(first["shards"]) == 4 and len(first["written"]) == 4  # 18 clips, 5 a shard
    assert first["recordings"] == 18 and first["skipped"] == []
    before = shard_bytes(out)
    again = write_embeddings(cfg, log=lambda m: None)
    assert again["written"] == [] and shard_bytes(out) == before
    os.remove(os.path.join(out, "embed-00002.tfrec"))
    lines = []
    third = write_embeddings(cfg, log=lines.append)
    assert third["written"] == ["embed-00002.tfrec"]
    assert "embed: resuming, 3 of 4 shards already written" in lines
    assert shard_bytes(out) == before
    elsewhere = write_embeddings(
        config(tmp_path, teacher, f"embed.output_dir={tmp_path}/other"), log=lambda m: None
    )
    assert shard_bytes(elsewhere["dir"]) == before  # a fresh set: the same bytes

    m = first
    assert m["teacher"]["name"] == "perch-v2" and m["teacher"]["classes"] == tm.CLASSES
    assert m["teacher"]["spec"] == f"perch:{teacher}" and len(m["teacher"]["model_sha256"]) == 64
    assert (m["dim"], m["logits"], m["window_seconds"]) == (1536, 5, 5.0)
    data = read_embeddings(out)
    n = m["examples"]
    assert n == 18  # every synthetic clip is 2-4 s: one 5-s window each
    assert data["embedding"].shape == (n, 1536) and data["logits"].shape == (n, 5)
    assert data["target"].shape == (n, 3) and (data["target"].max(1) == 1).all()
    assert set(data["fold"]) == {0, 1, 2} and (data["start"] == 0).all()
    # the first record, by hand: the clip at 32 kHz, zero-padded to 5 s, through the formula
    root = f"{tmp_path}/data/train_audio"
    path = os.path.join(root, data["recording"][0])
    wave, _ = load_audio(path, 32000)
    x = np.zeros((1, tm.SAMPLES), np.float32)
    x[0, : len(wave)] = wave
    emb, logits = tm.reference(x, tm.weights())
    np.testing.assert_allclose(data["embedding"][0], emb[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(data["logits"][0], logits[0], rtol=1e-4, atol=1e-5)
    stem = os.path.splitext(os.path.basename(data["recording"][0]))[0]
    assert data["id"][0] == f"{stem}_5"


def test_embed_cli_soundscapes_and_a_corrupt_recording(tmp_path, teacher):
    cfg = config(tmp_path, teacher)
    write_embeddings(cfg, log=lambda m: None)  # writes the synthetic set first
    scapes = f"{tmp_path}/data/soundscapes"
    with open(os.path.join(scapes, "broken.ogg"), "wb") as fh:
        fh.write(b"OggS not really")
    sets = [
        x
        for o in [*TINY, f"data.root={tmp_path}/data", f"output_dir={tmp_path}/runs"]
        for x in ("--set", o)
    ]
    done = run_cli("embed", *sets, "--teacher", f"perch:{teacher}", "--source", "soundscapes")
    assert done.returncode == 1, done.stderr
    assert "6 windows of 2 recordings in 1 shards (1 written), 1 skipped" in done.stdout
    assert "broken.ogg" in done.stderr
    out = f"{tmp_path}/runs/embeddings/perch-perch_v2-soundscapes"
    data = read_embeddings(out)
    assert data["id"][:3] == ["soundscape_000_5", "soundscape_000_10", "soundscape_000_15"]
    assert list(data["start"][:3]) == [0.0, 5.0, 10.0] and set(data["fold"]) == {-1}
    assert data["target"].shape == (6, 0) and set(data["label"]) == {-1}
