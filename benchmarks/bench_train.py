"""Training steps per second under the TensorFlow and JAX backends, and the tf.data feed into each.

    .venv/bin/python benchmarks/bench_train.py [--steps 3] [--batch 64] [--feed-steps 40]

Table 1, the training step: `configs/birdclef24.yaml`'s model (5-s clips at 32 kHz -> 128 x 384
mel image inside the model -> EfficientNetB0 from scratch -> softmax) trained on random waveforms
held in memory, so only the step is timed: TensorFlow without and with XLA, JAX (always XLA) on
one device, and JAX with `keras.distribution.DataParallel` over 2 host devices (the CPU split in
two, as a TPU slice's chips would share a batch). Table 2, the feed: clips/s that the same tf.data
pipeline from PCM shards (crop, pad, shuffle, batch) delivers into a minimal model's train step
under each backend, so the difference is what the backend's input path costs. Each case runs in
a fresh process (the backend is chosen at import); one warm-up step traces and compiles.
This measures the CPU it runs on; on an accelerator, run it there with the same command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_CASES = {  # name -> (backend, jit, host devices)
    "tensorflow": ("tensorflow", False, 1),
    "tensorflow+xla": ("tensorflow", True, 1),
    "jax": ("jax", True, 1),
    "jax 2 devices": ("jax", True, 2),
}
FEED_CASES = {"tensorflow": ("tensorflow", True, 1), "jax": ("jax", True, 1)}


def _setup(backend: str, devices: int) -> None:
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if devices > 1:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    sys.path.insert(0, ROOT)


def _distribute(devices: int) -> None:
    if devices > 1:
        import jax
        import keras

        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices("cpu")[:devices])
        )


def step_case(backend: str, jit: bool, devices: int, steps: int, batch: int) -> dict:
    """Time `steps` training steps of EfficientNetB0 after one warm-up step; in this process."""
    _setup(backend, devices)
    import numpy as np

    from birdtpu.config import load_config
    from birdtpu.models.registry import build_model
    from birdtpu.train.fit import compile_model

    _distribute(devices)
    cfg = load_config(
        os.path.join(ROOT, "configs", "birdclef24.yaml"),
        ["model.pretrained=none", f"train.batch_size={batch}", "train.steps_per_execution=1"],
    )
    samples = int(cfg.frontend.clip_seconds * cfg.data.sample_rate)
    classes = 182
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal((batch * (steps + 1), samples))).astype("float32")
    target = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, len(wave))]
    model = build_model(cfg, classes)
    compile_model(model, cfg, steps + 1, batch, jit, classes, log=lambda *_: None)
    started = time.perf_counter()
    model.fit(wave[:batch], target[:batch], batch_size=batch, epochs=1, verbose=0)
    first = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(wave[batch:], target[batch:], batch_size=batch, epochs=1, verbose=0, shuffle=False)
    timed = time.perf_counter() - started
    return {"first_step_s": first, "steps_per_s": steps / timed}


def feed_case(backend: str, devices: int, steps: int, batch: int, shards: str) -> dict:
    """Clips/s from PCM shards through tf.data into a minimal model's train step."""
    _setup(backend, devices)
    import keras

    from birdtpu.data.pipeline import build_dataset
    from birdtpu.data.shards import read_manifest, shard_paths

    manifest = read_manifest(shards)
    classes = len(manifest["classes"])
    data = build_dataset(
        shard_paths(shards, manifest), classes, 160000, batch, True, seed=0, log=lambda *_: None
    )
    model = keras.Sequential(
        [
            keras.Input((160000,)),
            keras.layers.Reshape((1000, 160)),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile("sgd", "categorical_crossentropy", jit_compile=True)
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # trace, compile, fill the pipeline
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    timed = time.perf_counter() - started
    return {"clips_per_s": steps * batch / timed}


def make_shards(folder: str) -> str:
    """PCM shards of 48 synthetic 10-s recordings at 32 kHz (as bench_pipeline writes them)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from bench_pipeline import RATE, write_recordings

    from birdtpu.config import ShardConfig
    from birdtpu.data.shards import build_shards

    df = write_recordings(os.path.join(folder, "audio"), 48, 10.0)
    out = os.path.join(folder, "shards")
    build_shards(
        df, sorted(df.label.unique()), out, RATE, ShardConfig(target_mb=8.0), log=lambda *_: None
    )
    return out


def child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_FLAGS")},
    )
    if out.returncode:
        sys.exit(f"{' '.join(args)}: failed\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (default 3)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--feed-steps", type=int, default=40, help="timed feed steps (default 40)")
    parser.add_argument("--step-case", choices=STEP_CASES, help=argparse.SUPPRESS)
    parser.add_argument("--feed-case", choices=FEED_CASES, help=argparse.SUPPRESS)
    parser.add_argument("--shards", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step_case:
        backend, jit, devices = STEP_CASES[args.step_case]
        print(json.dumps(step_case(backend, jit, devices, args.steps, args.batch)))
        return
    if args.feed_case:
        backend, _, devices = FEED_CASES[args.feed_case]
        print(json.dumps(feed_case(backend, devices, args.feed_steps, args.batch, args.shards)))
        return
    common = ["--steps", str(args.steps), "--batch", str(args.batch)]
    steps = {case: child(["--step-case", case, *common]) for case in STEP_CASES}
    print(
        f"EfficientNetB0 training at batch {args.batch}, 128 x 384 mel image (birdclef24), float32, "
        f"on the CPU ({os.cpu_count()} cores), {args.steps} timed steps after one warm-up step"
    )
    print(f"{'backend':<16}{'first step (s)':>16}{'steps/s':>10}{'clips/s':>10}{'ratio':>8}")
    base = steps["tensorflow"]["steps_per_s"]
    for case, r in steps.items():
        print(
            f"{case:<16}{r['first_step_s']:>16.1f}{r['steps_per_s']:>10.3f}"
            f"{r['steps_per_s'] * args.batch:>10.1f}{r['steps_per_s'] / base:>8.2f}"
        )
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        shards = make_shards(tmp)
        feed = {
            case: child(
                [
                    "--feed-case",
                    case,
                    "--shards",
                    shards,
                    "--batch",
                    str(args.batch),
                    "--feed-steps",
                    str(args.feed_steps),
                ]
            )
            for case in FEED_CASES
        }
    print(
        f"\ntf.data from PCM shards (5-s crops at 32 kHz, batch {args.batch}) into a minimal "
        f"model's train step, {args.feed_steps} timed steps"
    )
    print(f"{'backend':<16}{'clips/s':>10}{'ratio':>8}")
    for case, r in feed.items():
        ratio = r["clips_per_s"] / feed["tensorflow"]["clips_per_s"]
        print(f"{case:<16}{r['clips_per_s']:>10.0f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
