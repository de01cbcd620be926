"""`birdtpu shard` as a user runs it: a real SIGKILL part way, a rerun that finishes, and its errors."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from birdtpu import io
from birdtpu.cli import main
from birdtpu.config import SynthConfig, load_config
from birdtpu.data.prepare import ensure_shards
from birdtpu.data.shards import MANIFEST, read_manifest, shard_paths
from birdtpu.data.synth import write_dataset
from conftest import tiny_overrides


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """48 short synthetic recordings: with 10 kB shards, one shard each, so a build is easy to stop."""
    root = str(tmp_path_factory.mktemp("many") / "data")
    write_dataset(root, SynthConfig(num_species=3, clips_per_species=16, min_seconds=1.0, max_seconds=2.0,
                                    num_soundscapes=0), log=lambda *_: None)
    return root


def overrides(tmp_path, root, shard_dir):
    return tiny_overrides(tmp_path, f"data.root={root}", "data.synthesize=false", f"shards.dir={shard_dir}",
                          "shards.target_mb=0.01", "shards.workers=1")


def shard_command(args):
    return [sys.executable, "-m", "birdtpu.cli", "shard", *[x for a in args for x in ("--set", a)]]


def stamp(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.slow
def test_killed_build_resumes_without_rewriting_finished_shards(many_files, tmp_path):
    shard_dir = str(tmp_path / "shards")
    args = overrides(tmp_path, many_files, shard_dir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(tmp_path / "first.log", "wb") as err:
        proc = subprocess.Popen(shard_command(args), stdout=subprocess.DEVNULL, stderr=err, env=env,
                                start_new_session=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.isdir(shard_dir) and sum(n.endswith(".tfrec.json") for n in os.listdir(shard_dir)) >= 3:
                break
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole session: the build and anything it started
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    names = os.listdir(shard_dir)
    assert MANIFEST not in names
    finished = {n[: -len(".json")] for n in names if n.endswith(".tfrec.json")}
    assert 3 <= len(finished) < 48
    # nothing half-written is ever under a shard's own name: every named shard reads to its end
    for name in (n for n in names if n.endswith(".tfrec")):
        assert sum(1 for _ in tf.data.TFRecordDataset(os.path.join(shard_dir, name))) == 1
    kept = {n: (stamp(os.path.join(shard_dir, n)), stamp(os.path.join(shard_dir, n + ".json"))) for n in finished}
    temporaries = [n for n in names if ".tmp-" in n]

    rerun = subprocess.run(shard_command(args), capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming, {len(finished)} of 48 shards already written" in rerun.stderr
    if temporaries:
        assert f"removed {len(temporaries)} temporary file(s)" in rerun.stderr
    assert f"[{48 - len(finished)}/{48 - len(finished)}]" in rerun.stderr
    assert "48 clips in 48 shards, " in rerun.stdout and rerun.stdout.endswith(" 0 skipped\n")
    for name, (shard, sidecar) in kept.items():  # not rewritten: same inode, same mtime
        assert stamp(os.path.join(shard_dir, name)) == shard
        assert stamp(os.path.join(shard_dir, name + ".json")) == sidecar
    after = os.listdir(shard_dir)
    assert not [n for n in after if ".tmp-" in n]
    manifest = read_manifest(shard_dir)
    paths = shard_paths(shard_dir, manifest)
    assert len(paths) == 48 and not [p for p in paths if os.path.basename(p).startswith(".")]
    assert sum(1 for p in paths for _ in tf.data.TFRecordDataset(p)) == manifest["examples"] == 48
    assert all(sha(os.path.join(shard_dir, e["file"])) == e["sha256"] for e in manifest["shards"])
    # and the result is the very bytes of an uninterrupted build
    clean = load_config(None, overrides(tmp_path, many_files, str(tmp_path / "clean")))
    reference = ensure_shards(clean, lambda *_: None)
    assert [e["sha256"] for e in reference["shards"]] == [e["sha256"] for e in manifest["shards"]]


def test_cli_reports_an_unknown_schema_and_rebuilds(tiny_data, tmp_path, capsys):
    root, _ = tiny_data
    shard_dir = str(tmp_path / "shards")
    args = [x for a in tiny_overrides(tmp_path, f"data.root={root}", f"shards.dir={shard_dir}") for x in ("--set", a)]
    assert main(["shard", *args]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{shard_dir}: 18 clips in ") and "0 skipped" in out.out
    assert "shard: 18 clips, " in out.err
    manifest = io.read_json(os.path.join(shard_dir, MANIFEST))
    io.write_json(os.path.join(shard_dir, MANIFEST), {**manifest, "schema_version": 99})
    assert main(["shard", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birdtpu shard: error: {shard_dir}/{MANIFEST}: shard schema version 99 is not supported "
                   "(this birdtpu reads version 2); rebuild the shards (`birdtpu shard --rebuild`)"]
    assert main(["shard", *args, "--rebuild"]) == 0
    assert read_manifest(shard_dir)["examples"] == 18
