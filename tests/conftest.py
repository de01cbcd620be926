"""Shared fixtures: a tiny synthetic dataset and a tiny recipe that trains in seconds."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data")
REAL_CLIPS = os.path.join(DATA, "real_clips")

TINY = [
    "data.sample_rate=16000",
    "data.num_folds=3",
    "data.synthesize=true",
    "synth.num_species=3",
    "synth.clips_per_species=6",
    "synth.min_seconds=2",
    "synth.max_seconds=4",
    "synth.num_soundscapes=2",
    "synth.soundscape_seconds=12",
    "shards.target_mb=0.2",
    "shards.workers=1",
    "frontend.clip_seconds=2",
    "frontend.n_fft=256",
    "frontend.frames=32",
    "frontend.n_mels=32",
    "frontend.fmax=8000",
    "model.pretrained=none",
    "model.name=efficientnet_b0",
    "model.bn_momentum=0.9",
    "train.epochs=1",
    "train.batch_size=4",
    "train.steps_per_epoch=2",
    "train.warmup_epochs=0",
    "infer.window_seconds=2",
]


# the Freesound 2019 CNN at 1/8 width without any random layer: runs that must match number for
# number (one device vs two, one process vs two workers) see the same function
NO_RANDOM_LAYERS = [
    "model.name=fat2019",
    "model.width=0.125",
    "model.dropout=0",
    "model.backbone_dropout=0",
    "augment.freq_masks=0",
    "augment.time_masks=0",
]


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`birdtpu ARGS` in a subprocess, output captured as text."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "birdtpu.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def offline_kernel_env(home, code, data, out, models, target) -> dict:
    """The environment of a kernel run as on Kaggle without internet: birdtpu from the code
    dataset folder `code`, pip without an index and every proxy pointing nowhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "PIP_", "BIRDTPU_"))}
    env.update(
        BIRDTPU_LOCAL_SRC=str(code),
        BIRDTPU_DATA_ROOT=str(data),
        BIRDTPU_OUTPUT_DIR=str(out),
        BIRDTPU_MODELS_DIR=str(models),
        PIP_TARGET=str(target),
        PYTHONPATH=str(target),
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        HOME=str(home),
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
    )
    return env


def tiny_overrides(tmp_path, *extra: str) -> list[str]:
    """Overrides for a recipe on a tiny synthetic dataset under `tmp_path`."""
    return [*TINY, f"data.root={tmp_path}/data", f"output_dir={tmp_path}/runs", "name=tiny", *extra]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A synthetic BirdCLEF-layout dataset (3 species x 6 clips, 2 soundscapes), written once."""
    from birdtpu.config import load_config
    from birdtpu.data.synth import write_dataset

    root = tmp_path_factory.mktemp("tiny")
    cfg = load_config(None, tiny_overrides(root))
    write_dataset(cfg.data.root, cfg.synth, log=lambda *_: None)
    return cfg.data.root, cfg
