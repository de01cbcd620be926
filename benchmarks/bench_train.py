"""Training steps per second of EfficientNetB0 at the birdclef24 input, with and without XLA.

    .venv/bin/python benchmarks/bench_train.py [--steps 3] [--batch 64]

The model is `configs/birdclef24.yaml`'s (5-s clips at 32 kHz -> 128 x 384 mel image inside the
model -> EfficientNetB0 from scratch -> softmax), trained on random waveforms held in memory, so
only the training step is timed. Each case runs in a fresh process: one step to trace (and,
with jit_compile, XLA-compile) the train function, then `--steps` timed steps. This measures
the CPU it runs on (no GPU or TPU here); on an accelerator, run it there with the same command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def one_case(jit: bool, steps: int, batch: int) -> dict:
    """Time `steps` training steps after one warm-up step; in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)
    import numpy as np
    import tensorflow as tf

    from birdtpu.config import load_config
    from birdtpu.models.registry import build_model
    from birdtpu.train.fit import compile_model

    cfg = load_config(
        os.path.join(ROOT, "configs", "birdclef24.yaml"),
        ["model.pretrained=none", f"train.batch_size={batch}", "train.steps_per_execution=1"],
    )
    samples = int(cfg.frontend.clip_seconds * cfg.data.sample_rate)
    classes = 182
    rng = np.random.default_rng(0)
    wave = tf.constant(0.1 * rng.standard_normal((batch, samples)), tf.float32)
    target = tf.constant(np.eye(classes, dtype=np.float32)[rng.integers(0, classes, batch)])
    data = tf.data.Dataset.from_tensors((wave, target)).repeat()
    model = build_model(cfg, classes)
    compile_model(
        model,
        cfg,
        steps=steps + 1,
        global_batch=batch,
        jit=jit,
        num_classes=classes,
        log=lambda *_: None,
    )
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    first = time.perf_counter() - started
    started = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    timed = time.perf_counter() - started
    image = list(model.get_layer("efficientnetb0").input.shape[1:3])
    return {"first_step_s": first, "steps_per_s": steps / timed, "image": image}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case (default 3)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument(
        "--case", choices=("xla", "plain"), help=argparse.SUPPRESS
    )  # one case, in a child
    args = parser.parse_args()
    if args.case:
        print(json.dumps(one_case(args.case == "xla", args.steps, args.batch)))
        return
    results = {}
    for case in ("plain", "xla"):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--case",
                case,
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        if out.returncode:
            sys.exit(f"{case}: failed\n{out.stderr[-2000:]}")
        results[case] = json.loads(out.stdout.strip().splitlines()[-1])
    h, w = results["plain"]["image"]
    base = results["plain"]["steps_per_s"]
    print(
        f"EfficientNetB0 training at batch {args.batch}, {h} x {w} mel image (birdclef24: 5-s clips at 32 kHz), "
        f"float32, on the CPU ({os.cpu_count()} cores visible), {args.steps} timed steps after one warm-up step"
    )
    print(f"{'jit_compile':<12}{'first step (s)':>16}{'steps/s':>10}{'clips/s':>10}{'ratio':>8}")
    for case, label in (("plain", "False"), ("xla", "True")):
        r = results[case]
        print(
            f"{label:<12}{r['first_step_s']:>16.1f}{r['steps_per_s']:>10.3f}{r['steps_per_s'] * args.batch:>10.1f}"
            f"{r['steps_per_s'] / base:>8.2f}"
        )


if __name__ == "__main__":
    main()
