"""Faults as a user meets them: `shard` and `fit` killed (SIGKILL), a full disk, missing or corrupt shards.

Each must end with one clear line (or a resumable state after a kill), never with a half-written
file under a name that a later run trusts, and the rerun must finish the job.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import zipfile

import h5py
import pandas as pd
import pytest
import tensorflow as tf
from conftest import run_cli, tiny_overrides

from birdtpu import fs
from birdtpu.cli import main
from birdtpu.config import SynthConfig, load_config
from birdtpu.data.prepare import ensure_shards
from birdtpu.data.shards import MANIFEST, read_manifest, shard_paths
from birdtpu.data.shards.write import _TEMPORARY
from birdtpu.data.synth import write_dataset
from birdtpu.errors import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
SHARD_FULL = "free space or choose another shards.dir; finished shards are kept, rerun to resume"
FIT_FULL = "free space or choose another output_dir; the last backup is kept, rerun to resume"


def sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def stamp(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def sets(args) -> list[str]:
    return [x for a in args for x in ("--set", a)]


def command(verb: str, args) -> list[str]:
    return [sys.executable, "-m", "birdtpu.cli", verb, *sets(args)]


def assert_trusted_files_whole(shard_dir: str) -> set[str]:
    """Every name in a shard folder is a temporary one, a shard that reads to its end, or the sidecar
    of a shard whose size and sha256 it states; returns the shards with a sidecar (finished)."""
    names = os.listdir(shard_dir)
    finished = set()
    for name in names:
        path = os.path.join(shard_dir, name)
        if _TEMPORARY.match(name):
            continue
        if name.endswith(".tfrec.json"):
            entry = fs.read_json(path)
            shard = path[: -len(".json")]
            assert entry["file"] == name[: -len(".json")]
            assert os.path.getsize(shard) == entry["bytes"] and sha(shard) == entry["sha256"], name
            assert sum(1 for _ in tf.data.TFRecordDataset(shard)) == entry["examples"]
            finished.add(entry["file"])
        elif name.endswith(".tfrec"):  # committed, its sidecar maybe not yet: still whole
            for _ in tf.data.TFRecordDataset(path):
                pass
        else:
            assert name == MANIFEST, name
    return finished


def clean_build(overrides: list[str]) -> dict:
    """The manifest of an uninterrupted build (of the same settings, in another folder)."""
    return ensure_shards(load_config(None, overrides), lambda *_: None)


# ----------------------------------------------------------------------------- SIGKILL


@pytest.fixture(scope="module")
def many_files(tmp_path_factory):
    """48 short synthetic recordings: with 10 kB shards, one shard each, so a build is easy to stop."""
    root = str(tmp_path_factory.mktemp("many") / "data")
    write_dataset(
        root,
        SynthConfig(
            num_species=3, clips_per_species=16, min_seconds=1.0, max_seconds=2.0, num_soundscapes=0
        ),
        log=lambda *_: None,
    )
    return root


def many_overrides(tmp_path, root, shard_dir):
    return tiny_overrides(
        tmp_path,
        f"data.root={root}",
        "data.synthesize=false",
        f"shards.dir={shard_dir}",
        "shards.target_mb=0.01",
        "shards.workers=1",
    )


@pytest.mark.slow
def test_killed_build_resumes_without_rewriting_finished_shards(many_files, tmp_path):
    shard_dir = str(tmp_path / "shards")
    args = many_overrides(tmp_path, many_files, shard_dir)
    with open(tmp_path / "first.log", "wb") as err:
        proc = subprocess.Popen(
            command("shard", args),
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=ENV,
            start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (
                os.path.isdir(shard_dir)
                and sum(n.endswith(".tfrec.json") for n in os.listdir(shard_dir)) >= 3
            ):
                break
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole session: the build and anything it started
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()
    names = os.listdir(shard_dir)
    assert MANIFEST not in names  # the manifest, the set's commit point, comes last
    finished = assert_trusted_files_whole(shard_dir)
    assert 3 <= len(finished) < 48
    kept = {
        n: (stamp(os.path.join(shard_dir, n)), stamp(os.path.join(shard_dir, n + ".json")))
        for n in finished
    }
    temporaries = [n for n in names if _TEMPORARY.match(n)]
    with pytest.raises(
        DataError, match="no shard manifest"
    ):  # `fit` does not read a half-built set
        read_manifest(shard_dir)

    rerun = subprocess.run(
        command("shard", args), capture_output=True, text=True, env=ENV, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming, {len(finished)} of 48 shards already written" in rerun.stderr
    if temporaries:
        assert f"removed {len(temporaries)} temporary file(s)" in rerun.stderr
    assert f"[{48 - len(finished)}/{48 - len(finished)}]" in rerun.stderr
    assert "48 clips in 48 shards, " in rerun.stdout and rerun.stdout.endswith(" 0 skipped\n")
    for name, (shard, sidecar) in kept.items():  # not rewritten: same inode, same mtime
        assert stamp(os.path.join(shard_dir, name)) == shard
        assert stamp(os.path.join(shard_dir, name + ".json")) == sidecar
    assert not [n for n in os.listdir(shard_dir) if _TEMPORARY.match(n)]
    assert len(assert_trusted_files_whole(shard_dir)) == 48
    manifest = read_manifest(shard_dir)
    paths = shard_paths(shard_dir, manifest)
    assert (
        len(paths) == 48
        and sum(1 for p in paths for _ in tf.data.TFRecordDataset(p)) == manifest["examples"]
    )
    # and the result is the very bytes of an uninterrupted build
    reference = clean_build(many_overrides(tmp_path, many_files, str(tmp_path / "clean")))
    assert [e["sha256"] for e in reference["shards"]] == [e["sha256"] for e in manifest["shards"]]
    assert {k: v for k, v in reference.items() if k != "shards"} == {
        k: v for k, v in manifest.items() if k != "shards"
    }


STEPS = 12  # per epoch, 2 epochs; a backup every 3 steps


def fit_overrides(tmp_path, root, *extra):
    return tiny_overrides(
        tmp_path,
        f"data.root={root}",
        "model.name=fat2019",
        "model.width=0.125",
        "train.epochs=2",
        f"train.steps_per_epoch={STEPS}",
        "train.backup_steps=3",
        *extra,
    )


def assert_backup_whole(backup_dir) -> dict:
    """The backup folder holds state.json, the checkpoint it names (a whole .keras zip with the
    optimizer's variables) and at most temporary files; returns the state."""
    state = json.loads((backup_dir / "state.json").read_text())
    for name in os.listdir(backup_dir):
        assert (
            name in ("state.json", state["weights"]) or name.startswith(".") and ".tmp-" in name
        ), name
    with zipfile.ZipFile(backup_dir / state["weights"]) as z:
        assert z.testzip() is None
        with z.open("model.weights.h5") as fh, h5py.File(fh, "r") as h5:
            assert "optimizer" in h5
    return state


# under JAX on 2 host devices (DataParallel): the backup and resume of a distributed run, with
# noise in the model and MixUp/CutMix in the train step, as on an accelerator
BACKENDS = {
    "tensorflow": ["runtime.backend=tensorflow"],
    "jax": [
        "runtime.backend=jax",
        "runtime.cpu_replicas=2",
        "augment.in_model=true",
        "augment.mixup_prob=0.5",
        "augment.cutmix_prob=0.5",
    ],
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_killed_fit_resumes_at_the_epoch_and_step_of_its_backup(tmp_path, tiny_data, backend):
    root, _ = tiny_data
    run = tmp_path / "runs" / "tiny"
    state_path = run / "backup" / "state.json"
    overrides = fit_overrides(tmp_path, root, *BACKENDS[backend])
    with open(tmp_path / "first.log", "w") as out:
        proc = subprocess.Popen(
            command("fit", overrides),
            cwd=ROOT,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 600
        while not state_path.exists():  # the first mid-epoch backup (step 3) commits state.json
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.time() < deadline, "no backup within 10 minutes"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = assert_backup_whole(run / "backup")  # what the killed run last committed, whole
    epoch, step, global_step = state["epoch"], state["step"], state["global_step"]
    assert 0 < step < STEPS and global_step == epoch * STEPS + step and step % 3 == 0
    assert not (run / "metrics.json").exists()
    if (run / "model.keras").exists():  # the best model so far, whole
        with zipfile.ZipFile(run / "model.keras") as z:
            assert z.testzip() is None

    again = subprocess.run(
        command("fit", overrides),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        f"resuming from backup at epoch {epoch}, step {step} (global step {global_step})"
        in again.stderr
    )
    # Keras' per-epoch lines: the rest of the interrupted epoch, then whole epochs
    done = [int(n) for n in re.findall(r"^(\d+)/\1 - ", again.stdout, flags=re.M)]
    assert done == [STEPS - step] + [STEPS] * (1 - epoch)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["resumed_from"] == {"epoch": epoch, "step": step}
    assert metrics["steps_trained"] == 2 * STEPS  # optimizer.iterations came back from the backup
    assert pd.read_csv(run / "history.csv").epoch.tolist() == [0, 1]
    assert not (run / "backup").exists()
    assert not [n for n in os.listdir(run) if ".tmp-" in n]


# ----------------------------------------------------------------------------- full disk


class SmallDisk:
    """A folder with little room: a tmpfs of `total` bytes (`how` 'tmpfs', needs mount rights; None
    where it cannot be mounted), or a limit of `per_file` bytes on each file (RLIMIT_FSIZE, SIGXFSZ
    ignored) for the commands started by `run`. Either way writes fail with ENOSPC or EFBIG."""

    def __init__(self, path, how: str, total: int, per_file: int):
        self.path, self.how, self.limit = str(path), how, None
        os.makedirs(self.path, exist_ok=True)
        if how == "tmpfs":
            self.mounted = not subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={total}", "tmpfs", self.path],
                capture_output=True,
            ).returncode
        else:
            self.mounted, self.limit = False, per_file

    def free(self) -> None:
        """Make room: a bigger tmpfs (its files stay), or no limit."""
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=256m", self.path], check=True)
        self.limit = None

    def _preexec(self) -> None:
        if self.limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.limit))

    def run(self, verb: str, args) -> subprocess.CompletedProcess:
        return subprocess.run(
            command(verb, args),
            capture_output=True,
            text=True,
            env=ENV,
            cwd=ROOT,
            preexec_fn=self._preexec,
            timeout=900,
        )

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", self.path], capture_output=True)


@pytest.fixture
def small_disks(tmp_path):
    """`make(name, how, total, per_file)` -> a SmallDisk under tmp_path, unmounted at teardown."""
    disks = []

    def make(name: str, how: str, total: int, per_file: int) -> SmallDisk:
        disks.append(SmallDisk(tmp_path / name, how, total, per_file))
        return disks[-1]

    yield make
    for disk in disks:
        disk.close()


def one_error_line(proc, verb: str) -> str:
    """The single stderr line of a failed command (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [
        line for line in proc.stderr.splitlines() if line.startswith(f"birdtpu {verb}: error: ")
    ]
    assert len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0]), proc.stderr[-3000:]
    return errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["tmpfs", "fsize"])
def test_full_disk_during_shard_stops_with_one_line_and_resumes(
    how, small_disks, tiny_data, tmp_path
):
    root, _ = tiny_data
    # 18 clips of 2-4 s at 16 kHz: about 1.7 MB of PCM in shards of about 0.2 MB; room for a third
    # of it, or for no file over 150 kB (so no shard)
    disk = small_disks("shards", how, total=600_000, per_file=150_000)
    if how == "tmpfs" and not disk.mounted:
        pytest.skip("mounting a tmpfs is not permitted here (the fsize case covers a full disk)")
    args = tiny_overrides(tmp_path, f"data.root={root}", f"shards.dir={disk.path}")

    full = disk.run("shard", args)
    line = one_error_line(full, "shard")
    assert re.fullmatch(
        rf"birdtpu shard: error: no space left writing {re.escape(disk.path)}/\S+: "
        + re.escape(SHARD_FULL),
        line,
    ), line
    assert not [
        n for n in os.listdir(disk.path) if _TEMPORARY.match(n)
    ]  # the failed write's temporary is gone
    finished = assert_trusted_files_whole(disk.path)
    assert MANIFEST not in os.listdir(disk.path) and (finished or how == "fsize")

    disk.free()
    rerun = disk.run("shard", args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    if finished:
        assert f"resuming, {len(finished)} of " in rerun.stderr
    manifest = read_manifest(disk.path)
    reference = clean_build(
        tiny_overrides(tmp_path, f"data.root={root}", f"shards.dir={tmp_path}/clean")
    )
    assert [e["sha256"] for e in manifest["shards"]] == [e["sha256"] for e in reference["shards"]]
    assert len(assert_trusted_files_whole(disk.path)) == len(manifest["shards"])


def checkpoint_bytes(cfg, folder) -> int:
    """The size of one backup checkpoint of `cfg`'s model (weights and optimizer state), as Backup writes it."""
    from birdtpu.models.registry import build_model
    from birdtpu.train.fit import compile_model

    model = build_model(cfg, 3)
    compile_model(model, cfg, STEPS, cfg.train.batch_size, False, 3, lambda *_: None)
    model.optimizer.build(model.trainable_variables)
    path = os.path.join(folder, "probe.keras")
    model.save(path)
    return os.path.getsize(path)


@pytest.mark.slow
def test_full_disk_during_fit_keeps_the_last_backup_and_resumes(small_disks, tiny_data, tmp_path):
    root, _ = tiny_data
    probe = fit_overrides(tmp_path, root)
    ckpt = checkpoint_bytes(load_config(None, probe), tmp_path)
    # a tmpfs with room for the first backup (step 3) but not for the second beside it; else no
    # file may exceed half a checkpoint, so the first backup fails
    disk = small_disks("runs", "tmpfs", total=ckpt * 3 // 2 + (256 << 10), per_file=ckpt // 2)
    if not disk.mounted:
        disk = small_disks("runs-fsize", "fsize", total=0, per_file=ckpt // 2)
    args = fit_overrides(tmp_path, root, f"output_dir={disk.path}", f"shards.dir={tmp_path}/shards")
    backup = os.path.join(disk.path, "tiny", "backup")

    full = disk.run("fit", args)
    line = one_error_line(full, "fit")
    step = 6 if disk.mounted else 3
    assert line == (
        f"birdtpu fit: error: no space left writing {backup}/ckpt-{step:09d}.keras: " + FIT_FULL
    )
    if disk.mounted:  # the backup of step 3 is whole and still the one state.json names
        from pathlib import Path

        state = assert_backup_whole(Path(backup))
        assert (state["epoch"], state["step"]) == (0, 3)
    else:
        assert not os.path.exists(os.path.join(backup, "state.json"))
        assert not [n for n in os.listdir(backup) if n.endswith(".keras")]

    disk.free()
    rerun = disk.run("fit", args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (
        "resuming from backup at epoch 0, step 3 (global step 3)" in rerun.stderr
    ) == disk.mounted
    run = os.path.join(disk.path, "tiny")
    assert json.loads(open(os.path.join(run, "metrics.json")).read())["steps_trained"] == 2 * STEPS
    assert not os.path.exists(backup) and not [n for n in os.listdir(run) if ".tmp-" in n]


# ----------------------------------------------------------------------------- missing and corrupt shards


@pytest.fixture
def built(tiny_data, tmp_path):
    """(overrides, shard folder, manifest) of a finished tiny shard set in tmp_path."""
    root, _ = tiny_data
    shard_dir = str(tmp_path / "shards")
    args = tiny_overrides(tmp_path, f"data.root={root}", f"shards.dir={shard_dir}")
    return args, shard_dir, ensure_shards(load_config(None, args), lambda *_: None)


def test_missing_and_truncated_shards_are_named_before_training_and_rewritten(built, capsys):
    args, shard_dir, manifest = built
    gone, cut = (os.path.join(shard_dir, e["file"]) for e in manifest["shards"][:2])
    os.remove(gone)
    with open(cut, "r+b") as fh:
        fh.truncate(manifest["shards"][1]["bytes"] // 2)
    with pytest.raises(DataError) as err:  # what `fit` calls before it builds a dataset
        ensure_shards(load_config(None, args), lambda *_: None)
    assert str(err.value) == (
        f"{gone}: shard listed in the manifest is missing (and 1 more); "
        "rerun `birdtpu shard` to rewrite them"
    )

    assert main(["shard", *sets(args)]) == 0
    log = capsys.readouterr().err
    assert f"shard: rewriting {gone}: shard listed in the manifest is missing" in log
    assert (
        f"shard: rewriting {cut}: shard has {manifest['shards'][1]['bytes'] // 2} bytes, the manifest says "
        f"{manifest['shards'][1]['bytes']} (truncated or overwritten)"
    ) in log
    n = len(manifest["shards"])
    assert f"resuming, {n - 2} of {n} shards already written" in log
    assert read_manifest(shard_dir) == manifest  # the very same set again
    assert [sha(p) for p in (gone, cut)] == [e["sha256"] for e in manifest["shards"][:2]]


def test_verify_rewrites_a_shard_whose_bytes_changed(built, capsys):
    args, shard_dir, manifest = built
    path = os.path.join(shard_dir, manifest["shards"][0]["file"])
    with open(path, "r+b") as fh:  # one flipped byte in the audio: same size, another checksum
        fh.seek(manifest["shards"][0]["bytes"] // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert main(["shard", *sets(args)]) == 0  # sizes only: not seen
    assert "rewriting" not in capsys.readouterr().err
    assert main(["shard", "--verify", *sets(args)]) == 0
    log = capsys.readouterr().err
    assert (
        f"shard: rewriting {path}: shard bytes do not match the manifest's sha256 (corrupt)" in log
    )
    assert sha(path) == manifest["shards"][0]["sha256"] and read_manifest(shard_dir) == manifest


@pytest.mark.parametrize("fault", ["missing", "truncated", "flipped"])
def test_fit_names_a_missing_truncated_or_corrupt_shard(built, fault):
    args, shard_dir, manifest = built
    entry = manifest["shards"][-1]
    path = os.path.join(shard_dir, entry["file"])
    if (
        fault == "flipped"
    ):  # same size: found by the records' checksums while reading, still one line
        with open(path, "r+b") as fh:
            fh.seek(entry["bytes"] // 2)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0xFF]))
        line = one_error_line(run_cli("fit", *sets(args)), "fit")
        assert line.startswith(f"birdtpu fit: error: {shard_dir}: a shard is corrupt (")
        assert line.endswith("run `birdtpu shard --verify` to find and rewrite it")
        return
    if fault == "missing":
        os.remove(path)
        problem = "shard listed in the manifest is missing"
    else:
        with open(path, "r+b") as fh:
            fh.truncate(entry["bytes"] - 100)
        problem = (
            f"shard has {entry['bytes'] - 100} bytes, the manifest says {entry['bytes']} "
            "(truncated or overwritten)"
        )
    proc = run_cli("fit", *sets(args))
    assert (
        one_error_line(proc, "fit")
        == f"birdtpu fit: error: {path}: {problem}; rerun `birdtpu shard` to rewrite it"
    )
