"""`shard --runner beam`: the Beam pipeline writes the local builder's shards and manifest byte for
byte, skips bad files the same way and resumes. Needs the `[beam]` extra: `make test-beam` runs
these in .venv-beam (constraints-beam.txt), where TensorFlow is not installed at all."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("apache_beam")

from birdtpu.config import ShardConfig  # noqa: E402
from birdtpu.data.audio import write_audio  # noqa: E402
from birdtpu.data.shards import MANIFEST, build_shards  # noqa: E402

pytestmark = [pytest.mark.beam, pytest.mark.slow]


def _recordings(folder) -> pd.DataFrame:
    """12 noise recordings at three rates, one truncated ogg, one empty file and one missing."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(3)
    paths, labels = [], []
    for k in range(12):
        rate = (22050, 32000, 44100)[k % 3]
        path = os.path.join(folder, f"c{k % 3}_{k:02d}.{'ogg' if k % 2 else 'wav'}")
        write_audio(path, rng.uniform(-0.4, 0.4, int(rate * (2 + k % 4))).astype(np.float32), rate)
        paths.append(path)
        labels.append(f"c{k % 3}")
    with open(paths[1], "rb") as fh:  # cut an ogg short: unusable
        data = fh.read()
    with open(os.path.join(folder, "cut.ogg"), "wb") as fh:
        fh.write(data[: len(data) // 2])
    open(os.path.join(folder, "empty.wav"), "wb").close()
    paths += [os.path.join(folder, n) for n in ("cut.ogg", "empty.wav", "missing.wav")]
    labels += ["c0", "c1", "c2"]
    return pd.DataFrame(
        {
            "filepath": paths,
            "filename": [os.path.basename(p) for p in paths],
            "label": labels,
            "labels": [[x] for x in labels],
            "source": "test",
            "fold": [i % 2 for i in range(len(paths))],
        }
    )


def _files(folder) -> dict[str, bytes]:
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


def _build(df, out, beam_options=None, workers=1, lines=None):
    cfg = ShardConfig(target_mb=0.25, workers=workers, crop="whole")
    return build_shards(
        df,
        ["c0", "c1", "c2"],
        str(out),
        32000,
        cfg,
        {"test": 1},
        log=(lines.append if lines is not None else lambda *_: None),
        seed=5,
        progress_every=0,
        beam_options=beam_options,
    )


def test_beam_shards_and_manifest_equal_the_local_build(tmp_path):
    df = _recordings(tmp_path / "audio")
    local_lines, beam_lines = [], []
    local = _build(df, tmp_path / "local", workers=2, lines=local_lines)
    beam = _build(df, tmp_path / "beam", [], workers=2, lines=beam_lines)
    assert len(local["shards"]) >= 3
    assert _files(tmp_path / "beam") == _files(tmp_path / "local")  # shards, sidecars, manifest
    assert beam == local
    reasons = sorted(os.path.basename(s["file"]) for s in beam["skipped"])
    assert reasons == ["cut.ogg", "empty.wav", "missing.wav"]

    def closing(lines):  # the skip lines and the closing summary, the seconds they took aside
        kept = [line for line in lines if "skip" in line or " shards, " in line]
        return sorted(line.rsplit(", ", 1)[0] for line in kept if not line.startswith("shard: ["))

    assert any("3 skipped" in line for line in closing(beam_lines))
    assert closing(beam_lines) == closing(local_lines)


def test_beam_resumes_by_writing_only_the_missing_shards(tmp_path):
    df = _recordings(tmp_path / "audio")
    first = _build(df, tmp_path / "out", [])
    names = [e["file"] for e in first["shards"]]
    kept = {n: os.stat(tmp_path / "out" / n).st_mtime_ns for n in names[1:]}
    before = _files(tmp_path / "out")
    os.remove(tmp_path / "out" / names[0])
    os.remove(tmp_path / "out" / MANIFEST)
    lines = []
    _build(df, tmp_path / "out", [], lines=lines)
    assert any(f"resuming, {len(names) - 1} of {len(names)}" in line for line in lines)
    assert {n: os.stat(tmp_path / "out" / n).st_mtime_ns for n in names[1:]} == kept
    assert _files(tmp_path / "out") == before


def test_shard_command_runs_on_beam(tmp_path):
    """The CLI end to end on the synthetic set, in a fresh process: `--runner beam` writes the
    same set as the local runner."""
    outs = {}
    for runner in ("local", "beam"):
        out = tmp_path / runner
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "birdtpu.cli",
                "shard",
                "--runner",
                runner,
                "--set",
                f"data.root={tmp_path / 'data'}",
                "--set",
                "data.synthesize=true",
                "--set",
                f"shards.dir={out}",
                "--set",
                "synth.num_species=3",
                "--set",
                "synth.clips_per_species=5",
                "--set",
                "synth.num_soundscapes=0",
                "--set",
                "shards.workers=2",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "15 clips" in done.stdout, done.stdout
        outs[runner] = _files(out)
    assert outs["beam"] == outs["local"]
