"""Shard-build throughput: audio-hours sharded per wall-minute, beside a plain librosa.load loop.

The recordings are synthetic birdsong ogg/vorbis files from `birdtpu.data.synth` at 22.05, 32
and 44.1 kHz, 10-30 s each; a few are generated and copied under new names up to `--hours` of
audio (copies, not repeated rows, so no decode is cached). Every method decodes every file and
resamples it to 32 kHz with soxr HQ (librosa's default `soxr_hq` too):

- `librosa.load(sr=32000)` in a loop, one process: the baseline;
- `birdtpu load_audio` in a loop, one process: the decoder alone;
- `birdtpu load_audio` in 2 processes: the ceiling of a 2-worker build (decode only);
- `birdtpu build_shards` with 1 and 2 workers: decode, PCM16 TFRecords (fsynced), sidecars,
  checksums, manifest. Its wall time includes starting the spawned workers (no TensorFlow);
  `first row s` is when the first recording was done;
- the same build as an Apache Beam pipeline on the DirectRunner (2 processes), run by the
  Python of .venv-beam (`make install-beam`; `--beam-python`), since Beam has its own pins.

A second table is the stage-by-stage probe: each step of writing a shard timed alone on the first
hour of the recordings, as audio-hours per minute of one core, beside the TensorFlow import that
every worker paid before the writer needed no TensorFlow.

    .venv/bin/python benchmarks/bench_shards.py [--hours 6] [--workers 1 2] [--gzip]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RATE = 32000


def make_data(folder: str, hours: float, unique: int) -> list[str]:
    """`unique` synthetic recordings copied under new names until they hold `hours` of audio."""
    import soundfile as sf

    from birdtpu.config import SynthConfig
    from birdtpu.data.synth import write_dataset

    source = os.path.join(folder, f"unique{unique}")
    if not os.path.exists(os.path.join(source, "train_metadata.csv")):
        started = time.time()
        write_dataset(
            source,
            SynthConfig(
                num_species=6,
                clips_per_species=max(1, unique // 6),
                min_seconds=10,
                max_seconds=30,
                num_soundscapes=0,
            ),
            log=lambda *_: None,
        )
        print(
            f"generated {unique} synthetic recordings in {time.time() - started:.0f} s",
            file=sys.stderr,
        )
    audio = os.path.join(source, "train_audio")
    originals = sorted(
        os.path.join(d, f) for d, _, files in os.walk(audio) for f in files if f.endswith(".ogg")
    )
    seconds = {p: sf.info(p).duration for p in originals}
    copies = os.path.join(folder, f"copies{unique}-{hours:g}h")
    os.makedirs(copies, exist_ok=True)
    paths, total = [], 0.0
    while total < hours * 3600:
        src = originals[len(paths) % len(originals)]
        dst = os.path.join(copies, f"{len(paths):05d}_{os.path.basename(src)}")
        if not os.path.exists(dst):
            shutil.copyfile(src, dst)
        paths.append(dst)
        total += seconds[src]
    return paths


def catalog(paths: list[str]):
    import pandas as pd

    labels = [os.path.basename(p).split("_")[1] for p in paths]
    return pd.DataFrame(
        {
            "filepath": paths,
            "filename": [os.path.basename(p) for p in paths],
            "label": labels,
            "source": "synth",
            "fold": [i % 5 for i in range(len(paths))],
        }
    )


def each(paths: list[str], load, *args, **kwargs) -> None:
    """Decode every file, keeping none (6 h of 32 kHz float audio would take 2.8 GB)."""
    for path in paths:
        load(path, *args, **kwargs)


def decode_share(paths: list[str]) -> None:
    """A worker of the 2-process decode row."""
    from birdtpu.data.audio import load_audio

    each(paths, load_audio, RATE)


def in_processes(paths: list[str], n: int) -> None:
    """Decode `paths` in `n` spawned processes, every n-th file each (start-up included)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(n) as pool:
        pool.map(decode_share, [paths[k::n] for k in range(n)])


_BEAM_BUILD = """
import json, sys, time
import pandas as pd
from birdtpu.config import ShardConfig
from birdtpu.data.shards import build_shards
df = pd.read_json(sys.argv[1])
started = time.perf_counter()
m = build_shards(df, sorted(df["label"].unique()), sys.argv[2], 32000,
                 ShardConfig(target_mb=float(sys.argv[3]), workers=int(sys.argv[4]), crop="whole"),
                 log=lambda *_: None, progress_every=0, beam_options=[])
print(json.dumps({"wall": time.perf_counter() - started, "shards": len(m["shards"]),
                  "seconds": m["total_seconds"]}))
"""


def beam_build(python: str, df, out: str, target_mb: float, workers: int) -> dict:
    """The build on Beam's DirectRunner, run by the Python that has Beam (its own environment)."""
    import json
    import subprocess

    table = os.path.join(os.path.dirname(out), "catalog.json")
    df.to_json(table)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [python, "-c", _BEAM_BUILD, table, out, str(target_mb), str(workers)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    if done.returncode:
        raise SystemExit(f"the Beam build failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stages(paths: list[str], hours: float = 1.0) -> tuple[float, list[tuple[str, float]]]:
    """Seconds of each step of writing shards, timed alone on the first `hours` of `paths`."""
    import hashlib
    import subprocess

    import soundfile as sf
    import soxr

    from birdtpu.data.shards.records import serialize_example, to_pcm16
    from birdtpu.data.shards.tfrecord import frame

    spent: dict[str, float] = {}

    def step(name, fn, *args, **kwargs):
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - started
        return out

    total, target = 0.0, [1.0] + [0.0] * 5
    out = os.path.join(tempfile.mkdtemp(), "probe.tfrecord")
    with open(out, "wb") as fh:
        for path in paths:
            data, rate = step("decode (soundfile, float32)", sf.read, path, dtype="float32")
            wave = data if data.ndim == 1 else data.mean(axis=1)
            if rate != RATE:
                wave = step("resample (soxr HQ)", soxr.resample, wave, rate, RATE, "HQ")
                step("  resample (soxr VHQ), instead", soxr.resample, data, rate, RATE, "VHQ")
                step("  resample (soxr MQ), instead", soxr.resample, data, rate, RATE, "MQ")
            pcm = step("float -> int16", to_pcm16, wave)
            record = step(
                "encode tf.train.Example (no TF)",
                serialize_example,
                pcm,
                RATE,
                target,
                0,
                0,
                path,
                "synth",
                len(wave) / RATE,
            )
            framed = step("frame + masked CRC32C", frame, record)
            step("sha256", hashlib.sha256, framed)
            step("write (page cache)", fh.write, framed)
            total += len(wave) / RATE
            if total >= hours * 3600:
                break
        fh.flush()
        step("fsync (once per shard)", os.fsync, fh.fileno())
    os.remove(out)
    probe = (
        "import time; t = time.perf_counter(); import tensorflow; print(time.perf_counter() - t)"
    )
    spent["import tensorflow (each worker, before)"] = float(
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout
    )
    return total, list(spent.items())


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0, help="audio to shard (default 6 h)")
    parser.add_argument(
        "--unique", type=int, default=24, help="distinct recordings generated (default 24)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--target-mb", type=float, default=32.0, help="shard size (default 32 MB)")
    parser.add_argument(
        "--gzip", action="store_true", help="add a GZIP build with the most workers"
    )
    parser.add_argument(
        "--beam-python",
        default=".venv-beam/bin/python",
        help="the Python with Apache Beam for the Beam row ('' skips it)",
    )
    parser.add_argument(
        "--dir",
        default=os.path.join(tempfile.gettempdir(), "birdtpu-bench-shards"),
        help="data cache and output folder",
    )
    args = parser.parse_args(argv)

    import librosa

    from birdtpu.config import ShardConfig
    from birdtpu.data.audio import load_audio
    from birdtpu.data.shards import build_shards

    paths = make_data(args.dir, args.hours, args.unique)
    df = catalog(paths)
    classes = sorted(df["label"].unique())
    librosa.load(paths[0], sr=RATE)  # librosa's first call loads its resampler: not timed
    rows = [
        (
            "librosa.load(sr=32000) loop",
            1,
            "",
            timed(lambda: each(paths, librosa.load, sr=RATE)),
            None,
        )
    ]
    rows.append(
        (
            "birdtpu load_audio loop (decode only)",
            1,
            "",
            timed(lambda: each(paths, load_audio, RATE)),
            None,
        )
    )
    rows.append(
        (
            "birdtpu load_audio in 2 processes (ceiling)",
            2,
            "",
            timed(lambda: in_processes(paths, 2)),
            None,
        )
    )
    builds = [(w, "") for w in args.workers] + ([(max(args.workers), "GZIP")] if args.gzip else [])
    audio_seconds = None
    for workers, compression in builds:
        out = os.path.join(args.dir, "shards")
        shutil.rmtree(out, ignore_errors=True)
        cfg = ShardConfig(
            target_mb=args.target_mb, workers=workers, compression=compression, crop="whole"
        )
        result, lines = {}, []
        started = time.perf_counter()

        def log(line):
            if " recordings (" in line and not lines:
                lines.append(time.perf_counter() - started)

        wall = timed(
            lambda: result.update(
                build_shards(df, classes, out, RATE, cfg, log=log, progress_every=0)
            )
        )
        audio_seconds = result["total_seconds"]
        rows.append(
            (
                f"birdtpu build_shards ({len(result['shards'])} shards)",
                workers,
                compression or "none",
                wall,
                lines[0],
            )
        )
    if args.beam_python and os.path.exists(args.beam_python):
        out = os.path.join(args.dir, "shards")
        shutil.rmtree(out, ignore_errors=True)
        workers = max(args.workers)
        beam = beam_build(args.beam_python, df, out, args.target_mb, workers)
        rows.append(
            (f"Beam DirectRunner ({beam['shards']} shards)", workers, "none", beam["wall"], None)
        )
    elif args.beam_python:
        print(f"no {args.beam_python}: no Beam row (make install-beam)", file=sys.stderr)
    shutil.rmtree(os.path.join(args.dir, "shards"), ignore_errors=True)

    hours = audio_seconds / 3600
    base = hours / (rows[0][3] / 60)
    print(
        f"\n{len(paths)} synthetic ogg recordings, {hours:.2f} h of audio, resampled to 32 kHz; "
        f"{os.cpu_count()} CPU cores (shared)"
    )
    print(
        f"{'method':<40} {'workers':>7} {'gzip':>5} {'wall s':>8} {'first row s':>12} {'audio-h/min':>12} "
        f"{'vs librosa':>11}"
    )
    for name, workers, compression, wall, first in rows:
        speed = hours / (wall / 60)
        first = f"{first:.1f}" if first is not None else "-"
        print(
            f"{name:<40} {workers:>7} {compression or '-':>5} {wall:>8.1f} {first:>12} {speed:>12.2f} "
            f"{speed / base:>10.2f}x"
        )
    probed, spent = stages(paths)
    print(f"\nstages, each timed alone on {probed / 3600:.2f} h of the recordings, one core:")
    print(f"{'stage':<42} {'s':>7} {'audio-h/min':>12} {'share':>6}")
    work = sum(t for name, t in spent if not name.startswith(("  ", "import")))
    for name, t in spent:
        share = "" if name.startswith(("  ", "import")) else f"{t / work:>6.0%}"
        print(f"{name:<42} {t:>7.2f} {probed / 3600 / (t / 60):>12.1f} {share:>6}")


if __name__ == "__main__":
    main()
