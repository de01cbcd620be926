"""Input throughput at 5 s / 32 kHz / batch 64, and the mel layer against librosa on the same batch.

    .venv/bin/python benchmarks/bench_pipeline.py [--files 128] [--seconds 10] [--batches 12]

Writes `--files` synthetic recordings (`--seconds` each, 32 kHz mono Ogg Vorbis: calls in noise)
to a temporary folder and builds PCM shards from them with `birdtpu.data.shards.build_shards`
(a one-off cost, printed). Then it times, in clips per second after a warm-up batch:
the training pipeline from the shards (random 5-s crops, shuffled, batched; and again with the
default waveform noise and MixUp), the same pipeline from the ogg files decoded on the fly
(`build_file_dataset`: soundfile in `tf.numpy_function`, parallel), and the plain Python loop
`librosa.load` + random crop (one core, as notebooks do). tf.data uses every core it may.
The mel rows time `MelSpectrogram` + `PowerToDb` (2048-point FFT, 128 mels, 384 frames) in a
tf.function with and without XLA, against `librosa.feature.melspectrogram` + `power_to_db` clip
by clip, on one batch of 64 clips from the pipeline. Longer recordings favour the shards more:
decoding on the fly reads a whole file for each 5-s crop.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from birdtpu.config import AugmentConfig, ShardConfig  # noqa: E402
from birdtpu.data.audio import write_audio  # noqa: E402
from birdtpu.data.pipeline import build_dataset, build_file_dataset  # noqa: E402
from birdtpu.data.shards import build_shards, shard_paths  # noqa: E402
from birdtpu.layers.frontend import MelSpectrogram, PowerToDb  # noqa: E402

RATE, CLIP_SECONDS, BATCH, CLASSES = 32000, 5.0, 64, 8
CLIP = int(RATE * CLIP_SECONDS)
MEL = dict(n_fft=2048, frames=384, n_mels=128, fmin=20.0, fmax=16000.0)


def write_recordings(folder: str, files: int, seconds: float) -> pd.DataFrame:
    """Ogg recordings: a few frequency-modulated calls in pink-ish noise; their catalog."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    rows = []
    for i in range(files):
        label = i % CLASSES
        noise = np.cumsum(rng.standard_normal(len(t))) * 1e-3
        noise -= np.convolve(noise, np.ones(64) / 64, mode="same")
        calls = np.sin(2 * np.pi * (1500 + 400 * label) * t + 3 * np.sin(2 * np.pi * 8 * t))
        calls *= (np.sin(2 * np.pi * rng.uniform(0.3, 1.0) * t) > 0.6)
        wave = (0.3 * calls + noise).astype(np.float32)
        name = f"c{label}/rec{i:04d}.ogg"
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_audio(path, wave / np.abs(wave).max() * 0.8, RATE)
        rows.append({"filepath": path, "filename": name, "label": f"c{label}", "fold": 0, "source": "bench"})
    return pd.DataFrame(rows)


def clips_per_second(make, batches: int, repeats: int = 2) -> float:
    """Clips per second delivered by the dataset `make()` builds: the best of `repeats` runs of
    `batches` batches, each after two warm-up batches (tracing, filling the buffers)."""
    best = 0.0
    for _ in range(repeats):
        it = iter(make())
        next(it)
        next(it)
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        best = max(best, batches * BATCH / (time.perf_counter() - start))
    return best


def librosa_loop(paths: list[str], batches: int) -> float:
    """Clips per second of `librosa.load` + random crop + np.stack, one file after another."""
    rng = np.random.default_rng(1)
    librosa.load(paths[0], sr=RATE)  # warm-up: librosa's lazy imports
    start = time.perf_counter()
    for b in range(batches):
        clips = []
        for path in rng.choice(paths, BATCH):
            wave, _ = librosa.load(path, sr=RATE)
            offset = rng.integers(0, max(1, len(wave) - CLIP + 1))
            clips.append(np.pad(wave[offset: offset + CLIP], (0, max(0, CLIP - len(wave)))))
        np.stack(clips)
    return batches * BATCH / (time.perf_counter() - start)


def mel_rates(batch: np.ndarray, repeats: int) -> dict[str, float]:
    """Clips per second of the mel + dB layers (tf.function, with and without XLA) and of librosa."""
    mel, db = MelSpectrogram(CLIP, RATE, **MEL), PowerToDb(80.0)
    rates = {}
    for label, jit in (("XLA", True), ("graph", False)):
        fn = tf.function(lambda x: db(mel(x)), jit_compile=jit)
        ours = fn(batch).numpy()
        start = time.perf_counter()
        for _ in range(repeats):
            fn(batch).numpy()
        rates[label] = repeats * len(batch) / (time.perf_counter() - start)
    start = time.perf_counter()
    ref = np.stack([librosa.power_to_db(librosa.feature.melspectrogram(
        y=x, sr=RATE, n_fft=MEL["n_fft"], hop_length=mel.hop_length, n_mels=MEL["n_mels"], fmin=MEL["fmin"],
        fmax=MEL["fmax"], center=True, pad_mode="constant"), ref=1.0, amin=1e-10, top_db=None)[:, :MEL["frames"]]
        for x in batch])
    rates["librosa"] = len(batch) / (time.perf_counter() - start)
    loud = ref > ref.max(axis=(1, 2), keepdims=True) - 60
    rates["max_db_error"] = float(np.abs(ours[..., 0] - ref)[loud].max())
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batches", type=int, default=12, help="timed batches per tf.data run")
    args = parser.parse_args()
    n, slow_batches = args.batches, max(2, args.batches // 4)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        df = write_recordings(os.path.join(tmp, "audio"), args.files, args.seconds)
        written = time.perf_counter() - started
        classes = sorted(df.label.unique())
        started = time.perf_counter()
        manifest = build_shards(df, classes, os.path.join(tmp, "shards"), RATE,
                                ShardConfig(target_mb=8.0, max_seconds=60.0), log=lambda *_: None)
        built = time.perf_counter() - started
        paths = shard_paths(os.path.join(tmp, "shards"), manifest)
        targets = np.eye(len(classes), dtype=np.float32)[df.label.map(classes.index)]
        bare = AugmentConfig(noise_prob=0.0, mixup_prob=0.0)

        rows = []

        def shards(aug):
            return lambda: build_dataset(paths, len(classes), CLIP, BATCH, True, aug, seed=0)

        def ogg():
            return build_file_dataset(list(df.filepath), targets, CLIP, BATCH, True, RATE, bare, seed=0)

        rows.append(("input", "PCM shards (tf.data: crop, shuffle, batch)", clips_per_second(shards(bare), n)))
        rows.append(("input", "PCM shards + Gaussian noise + MixUp", clips_per_second(shards(AugmentConfig()), n)))
        rows.append(("input", "ogg decoded on the fly (tf.data + soundfile)", clips_per_second(ogg, n)))
        rows.append(("input", "librosa.load loop + crop (baseline)", librosa_loop(list(df.filepath), slow_batches)))
        batch = next(iter(shards(bare)()))[0].numpy()
        mel = mel_rates(batch, repeats=3)
        rows += [("mel", "MelSpectrogram + PowerToDb, tf.function XLA", mel["XLA"]),
                 ("mel", "MelSpectrogram + PowerToDb, tf.function", mel["graph"]),
                 ("mel", "librosa melspectrogram + power_to_db (baseline)", mel["librosa"])]

    base = {"input": rows[3][2], "mel": rows[-1][2]}
    print(f"\n{args.files} ogg files of {args.seconds:g} s at 32 kHz; {len(paths)} shards built in {built:.1f} s "
          f"(one-off; writing the ogg files took {written:.1f} s); {os.cpu_count()} cores; batches of {BATCH} "
          f"x {CLIP_SECONDS:g} s\n")
    print(f"| stage | method | clips/s | x baseline |\n|---|---|---:|---:|")
    for stage, name, rate in rows:
        print(f"| {stage} | {name} | {rate:,.0f} | {rate / base[stage]:.1f} |")
    print(f"\nshards / ogg on the fly: {rows[0][2] / rows[2][2]:.1f}x (target >= 20x); "
          f"mel vs librosa: max |dB error| {mel['max_db_error']:.4f} on bins within 60 dB of each clip's peak")


if __name__ == "__main__":
    main()
