"""Peak memory (RSS) of `birdtpu shard` and `birdtpu fit` as the dataset grows: does it stay flat?

Synthetic datasets of `--clips` recordings (4 species, `--seconds` +-20% each at 16 kHz, so 10x
the clips is 10x the audio), one recording per shard, are sharded (one worker, in-process) and
trained on for one epoch over every training clip (a tiny fat2019, shuffle buffer of 16 clips),
each command in a fresh wrapper process whose `getrusage(RUSAGE_CHILDREN).ru_maxrss` is the
command's peak RSS. The table gives the PCM the shards hold beside each peak: a stage that held all
the audio would grow by at least that much. RSS is mostly TensorFlow and Keras (about 0.6-1 GB
whatever the data), so read the growth. The pipeline reads up to 16 shards at once (interleave
`cycle_length`), each with a few records in flight: with 48 clips (32 training, 16 validation
shards) those buffers are already full, so what grows past that is the data held.

    .venv/bin/python benchmarks/bench_memory.py [--clips 48 480] [--seconds 8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SPECIES = 4
WRAPPER = (
    "import json, resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "sys.stderr.buffer.write(p.stderr[-4000:] if p.returncode else b'')\n"
    "print(json.dumps({'rc': p.returncode, 'peak_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
)
SETTINGS = [
    "data.sample_rate=16000",
    "data.num_folds=3",
    "data.synthesize=false",
    "shards.target_mb=0.01",
    "shards.workers=1",
    "frontend.clip_seconds=2",
    "frontend.n_fft=256",
    "frontend.frames=32",
    "frontend.n_mels=32",
    "frontend.fmax=8000",
    "model.pretrained=none",
    "model.name=fat2019",
    "model.width=0.125",
    "train.epochs=1",
    "train.batch_size=4",
    "train.steps_per_epoch=0",
    "train.warmup_epochs=0",
    "train.shuffle_buffer=16",
    "train.backup_steps=0",
    "tracking.wandb=disabled",
]


def write_data(folder: str, clips: int, seconds: float) -> str:
    """A synthetic BirdCLEF-layout dataset of `clips` recordings of `seconds` +-20% at 16 kHz (written once)."""
    from birdtpu.config import SynthConfig
    from birdtpu.data.synth import write_dataset

    root = os.path.join(folder, f"data{clips}x{seconds:g}s")
    if not os.path.exists(os.path.join(root, "train_metadata.csv")):
        write_dataset(
            root,
            SynthConfig(
                num_species=SPECIES,
                clips_per_species=clips // SPECIES,
                min_seconds=0.8 * seconds,
                max_seconds=1.2 * seconds,
                sample_rates=[16000],
                num_soundscapes=0,
            ),
            log=lambda *_: None,
        )
    return root


def overrides(root: str, work: str) -> list[str]:
    """The settings of a run on dataset `root` with its outputs under `work`."""
    return [
        *SETTINGS,
        f"data.root={root}",
        f"output_dir={work}/runs",
        "name=mem",
        f"shards.dir={work}/shards",
    ]


def peak_rss(verb: str, args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of `birdtpu VERB --set ARGS...`, run in a fresh wrapper process."""
    command = [sys.executable, "-m", "birdtpu.cli", verb, *[x for a in args for x in ("--set", a)]]
    started = time.time()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, env=env, cwd=ROOT
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"]:
        raise RuntimeError(f"birdtpu {verb} failed ({result['rc']}): {out.stderr}")
    return result["peak_kb"] / 1024, time.time() - started


def pcm_mb(shard_dir: str) -> float:
    """MB of the shards in `shard_dir` (int16 PCM and a few bytes of fields per clip)."""
    return (
        sum(
            os.path.getsize(os.path.join(shard_dir, n))
            for n in os.listdir(shard_dir)
            if n.endswith(".tfrec")
        )
        / 2**20
    )


def measure(folder: str, clips: int, seconds: float = 8.0) -> dict:
    """Peak RSS of `shard` then `fit` on a dataset of `clips` recordings in `folder` (fresh outputs)."""
    work = os.path.join(folder, f"work{clips}x{seconds:g}s")
    shutil.rmtree(work, ignore_errors=True)
    args = overrides(write_data(folder, clips, seconds), work)
    shard, shard_s = peak_rss("shard", args)
    fit, fit_s = peak_rss("fit", args)
    return {
        "clips": clips,
        "pcm_mb": pcm_mb(os.path.join(work, "shards")),
        "shard_mb": shard,
        "shard_s": shard_s,
        "fit_mb": fit,
        "fit_s": fit_s,
    }


def table(rows: list[dict]) -> str:
    """The rows with each peak's growth over the first row's, beside the growth of the PCM."""
    base = rows[0]
    lines = [
        f"{'clips':>6} {'PCM MB':>8} {'shard peak MB':>14} {'x':>6} {'+MB':>6} {'fit peak MB':>12} "
        f"{'x':>6} {'+MB':>6} {'+PCM MB':>8} {'shard s':>8} {'fit s':>6}"
    ]
    for r in rows:
        shard, fit = r["shard_mb"], r["fit_mb"]
        lines.append(
            f"{r['clips']:>6} {r['pcm_mb']:>8.1f} {shard:>14.0f} {shard / base['shard_mb']:>6.2f} "
            f"{shard - base['shard_mb']:>+6.0f} {fit:>12.0f} {fit / base['fit_mb']:>6.2f} "
            f"{fit - base['fit_mb']:>+6.0f} {r['pcm_mb'] - base['pcm_mb']:>+8.1f} "
            f"{r['shard_s']:>8.1f} {r['fit_s']:>6.1f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clips", type=int, nargs="+", default=[48, 480], help="dataset sizes, first = 1x"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="mean length of a recording")
    parser.add_argument(
        "--keep", default="", help="folder for the datasets (kept); default a temporary one"
    )
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="bench_memory_")
    try:
        rows = []
        for clips in args.clips:
            rows.append(measure(folder, clips, args.seconds))
            print(f"measured {clips} clips", file=sys.stderr)
        print(table(rows))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
