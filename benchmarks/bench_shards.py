"""Shard-build throughput: audio-hours sharded per wall-minute, beside a plain librosa.load loop.

The recordings are synthetic birdsong ogg/vorbis files from `birdtpu.data.synth` at 22.05, 32
and 44.1 kHz, 10-30 s each; a few are generated and copied under new names up to `--hours` of
audio (copies, not repeated rows, so no decode is cached). Every method decodes every file and
resamples it to 32 kHz with soxr HQ (librosa's default `soxr_hq` too):

- `librosa.load(sr=32000)` in a loop, one process: the baseline;
- `birdtpu load_audio` in a loop, one process: the decoder alone;
- `birdtpu build_shards` with 1 and 2 workers: decode, PCM16 TFRecords (fsynced), sidecars,
  checksums, manifest. Its wall time includes starting the spawned workers, each of which imports
  TensorFlow (about 4 s of CPU); `first row s` is when the first recording was done.

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


if __name__ == "__main__":
    main()
