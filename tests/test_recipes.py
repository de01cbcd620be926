"""Every recipe's model through the round trip a user makes: build (tiny), fit a step, save; then
in a fresh Python process load, predict and export (SavedModel, TFLite), outputs compared.

Recipes whose tiny models are the same graph (STRUCTURE: the same layers and shapes; rates,
filterbank edges, dB floors, activation functions and SED blend weights are constants in it)
share one round trip: each case checks the result of its TWIN, the first such case by name, and
only the twins of the selected cases are built (`-k birdclef26` builds one model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from birdtpu import fs
from birdtpu.config import load_config
from birdtpu.infer.clip_inputs import windows_clip_inputs
from birdtpu.models.registry import build_model
from birdtpu.train.losses import make_loss

CONFIGS = os.path.join(os.path.dirname(__file__), os.pardir, "configs")
RECIPES = sorted(f[: -len(".yaml")] for f in os.listdir(CONFIGS) if f.endswith(".yaml"))
TINY = [
    "data.sample_rate=16000",
    "frontend.clip_seconds=2",
    "frontend.n_fft=256",
    "frontend.frames=64",
    "frontend.n_mels=32",
    "frontend.fmax=8000",
    "model.pretrained=none",
]
NARROW = "model.width=0.125"  # cnn14 and fat2019 at 1/8 of their channels
# beyond the recipes: the other architectures a recipe can name (fat2019.yaml has the global
# features; birdclef23 and rainforest the SED head, the others the clip head)
VARIANTS = {
    "fat2019_plain": ("fat2019", ["model.name=fat2019"]),
    "cnn14": ("demo", ["model.name=cnn14"]),
}
CASES = {**{r: (r, []) for r in RECIPES}, **VARIANTS}
CLASSES = ["a", "b", "c"]
# the settings that make two tiny models different graphs (sigmoid and softmax each round-trip
# in some case; a model with either is the same graph otherwise)
STRUCTURE = {
    "data": ("sample_rate",),
    "model": ("name", "head", "neck", "global_features", "width"),
    "frontend": (
        *("clip_seconds", "n_fft", "win_length", "frames", "n_mels"),
        *("power", "normalize", "channels", "impl"),
    ),
}

CHILD = r"""
import json, sys, traceback
import numpy as np
from birdtpu.infer.clip_inputs import windows_clip_inputs
from birdtpu.infer.export import export_model
from birdtpu.infer.runners import KerasRunner, load_model, open_model

results = {}
for case, folder in json.loads(sys.argv[1]).items():
    waves, expected = np.load(f"{folder}/waves.npy"), np.load(f"{folder}/probs.npy")
    clip = windows_clip_inputs(json.load(open(f"{folder}/model.json")), waves)
    out = results[case] = {}
    try:
        keras_probs = KerasRunner(f"{folder}/model.keras")(waves, clip)
        out["keras"] = float(np.abs(keras_probs - expected).max())
        for fmt in ("savedmodel", "tflite"):
            side = export_model(f"{folder}/model.keras", fmt, check=waves, log=lambda *_: None)
            out[fmt] = float(np.abs(open_model(side["path"])(waves, clip) - expected).max())
            out[fmt + "_check"] = side["max_abs_diff"]
    except Exception:
        out["error"] = traceback.format_exc()[-1500:]
print(json.dumps(results))
"""


def _tiny_config(case: str):
    recipe, extra = CASES[case]
    path = os.path.join(CONFIGS, recipe + ".yaml")
    cfg = load_config(path, [*TINY, *extra])
    if not cfg.model.name.startswith("efficientnet"):
        cfg = load_config(path, [*TINY, *extra, NARROW])
    return cfg


def _twins() -> dict[str, str]:
    """{case: the first case by name whose tiny model has the same STRUCTURE}."""
    first, out = {}, {}
    for case in sorted(CASES):
        cfg = _tiny_config(case)
        key = tuple(
            repr(getattr(getattr(cfg, s), k)) for s, keys in STRUCTURE.items() for k in keys
        )
        out[case] = first.setdefault(key, case)
    return out


TWIN = _twins()


def _build_and_fit(case: str, folder: str) -> None:
    cfg = _tiny_config(case)
    model = build_model(cfg, len(CLASSES))
    model.compile(keras.optimizers.Adam(1e-3), make_loss(cfg.train))
    rng = np.random.default_rng(0)
    samples = int(cfg.frontend.clip_seconds * cfg.data.sample_rate)
    waves = (0.1 * rng.standard_normal((4, samples))).astype("float32")
    targets = np.eye(len(CLASSES), dtype="float32")[[0, 1, 2, 0]]
    meta = {"classes": CLASSES, "sample_rate": cfg.data.sample_rate, "clip_seconds": 2.0}
    if cfg.model.global_features:  # the clip inputs: each window taken as its whole recording
        meta["clip_trim_db"] = cfg.augment.trim_db
    clip = windows_clip_inputs(meta, waves)
    x = waves if clip is None else {"waveform": waves, **clip}
    assert np.isfinite(float(model.train_on_batch(x, targets)))
    model.save(os.path.join(folder, "model.keras"))
    fs.write_json(os.path.join(folder, "model.json"), meta)
    np.save(os.path.join(folder, "waves.npy"), waves)
    np.save(os.path.join(folder, "probs.npy"), np.asarray(model(x, training=False)))


@pytest.fixture(scope="module")
def round_trips(request, tmp_path_factory):
    """{twin: {format: largest difference to the training process's predictions}}, for the twins
    of the selected cases."""
    selected = {
        item.callspec.params["case"]
        for item in request.session.items
        if item.module is request.module
        and "case" in getattr(getattr(item, "callspec", None), "params", {})
    }
    folders = {}
    for case in sorted({TWIN[c] for c in selected}):
        folders[case] = str(tmp_path_factory.mktemp(case))
        _build_and_fit(case, folders[case])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(folders)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_recipe_model_loads_predicts_and_exports_in_a_fresh_process(case, round_trips):
    diffs = round_trips[TWIN[case]]
    assert "error" not in diffs, diffs["error"]
    assert diffs["keras"] < 1e-5, diffs
    for fmt in ("savedmodel", "tflite"):
        assert diffs[fmt] < 1e-4 and diffs[fmt + "_check"] < 1e-4, (fmt, diffs)
