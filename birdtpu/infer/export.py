"""Export a model saved by `fit` for fast CPU inference: SavedModel, TFLite float32, TFLite int8.

| format        | writes (next to the model)        | holds                                            |
|---------------|-----------------------------------|--------------------------------------------------|
| savedmodel    | `<stem>_savedmodel/`              | waveform -> probabilities (serving signature)    |
| tflite        | `<stem>_fp32.tflite`              | float32; XNNPACK runs it                         |
| tflite-int8   | `<stem>_int8.tflite`              | dynamic-range int8 weights, float activations    |

Each export gets a sidecar of its name with `.json` (`model_fp32.json`, ...): the model's classes, sample rate and clip
length, the source `.keras` file, and how far the export's outputs are from the Keras model's on
sample windows (largest absolute difference, share of windows with the same top class).

The mel frontend: training computes it with kapre, whose complex transpose TFLite cannot run.
Exports use `MelSpectrogramTflite`, the same arithmetic in an order TFLite converts. A TFLite
export keeps the frontend out of the file by default (`frontend="host"`): the sidecar holds it
and the runner computes the images on the host (`hostmel.py`: scipy's FFT, then the frontend's
own layers), several times faster than TFLite's FFT; `frontend="tflite"` puts it inside, for a
self-contained file.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from birdtpu import fs
from birdtpu.errors import DataError
from birdtpu.layers.frontend import MelSpectrogram, MelSpectrogramTflite, SpecAugment

FORMATS = ("savedmodel", "tflite", "tflite-int8")
SUFFIXES = {"savedmodel": "_savedmodel", "tflite": "_fp32.tflite", "tflite-int8": "_int8.tflite"}
FRONTENDS = ("host", "tflite")


def _frontend_layer(model: keras.Model):
    """The Sequential frontend (the one holding a MelSpectrogram) that reads the waveform."""
    for layer in model.layers:
        if isinstance(layer, keras.Sequential) and any(
            isinstance(x, MelSpectrogram) for x in layer.layers
        ):
            return layer
    raise DataError(f"{model.name}: no mel frontend (a Sequential with a MelSpectrogram) to export")


def split_frontend(model: keras.Model) -> tuple[keras.Sequential, keras.Model]:
    """(inference frontend: waveform -> image, rest: image -> probabilities) of a `fit` model.

    The frontend drops SpecAugment (identity at inference) and uses MelSpectrogramTflite.
    """
    if len(model.inputs) != 1:
        raise DataError(
            f"{model.name}: has {len(model.inputs)} inputs; predict and export take models "
            "with the waveform as their only input"
        )
    front = _frontend_layer(model)
    layers = [
        MelSpectrogramTflite.from_config(x.get_config()) if isinstance(x, MelSpectrogram) else x
        for x in front.layers
        if not isinstance(x, SpecAugment)
    ]
    samples = model.inputs[0].shape[1]
    frontend = keras.Sequential(
        [keras.Input((samples,), name="waveform"), *layers], name="frontend"
    )
    return frontend, keras.Model(front.output, model.output, name=f"{model.name}_from_image")


def inference_model(model: keras.Model) -> keras.Model:
    """Waveform -> probabilities with the weights of `model` and the exportable frontend."""
    frontend, rest = split_frontend(model)
    wave = keras.Input(frontend.input_shape[1:], name="waveform")
    return keras.Model(wave, rest(frontend(wave)), name=model.name)


def default_path(model_path: str, fmt: str) -> str:
    """Where `fmt` goes next to `model_path` (model.keras -> model_fp32.tflite, ...)."""
    stem = model_path[: -len(".keras")] if model_path.endswith(".keras") else model_path
    return stem + SUFFIXES[fmt]


def _sidecar(out: str) -> str:
    stem = out.rstrip("/")
    return (stem[: -len(".tflite")] if stem.endswith(".tflite") else stem) + ".json"


def _save_savedmodel(model: keras.Model, out: str) -> None:
    """Write a SavedModel folder: locally through a temporary folder and a rename."""
    if fs.is_remote(out):
        model.export(out, format="tf_saved_model", verbose=False)
        return
    tmp = fs.temp_name(out)
    model.export(tmp, format="tf_saved_model", verbose=False)
    old = fs.temp_name(out) if os.path.exists(out) else None
    if old:
        os.replace(out, old)
    os.replace(tmp, out)
    if old:
        shutil.rmtree(old)


def _tflite_bytes(model: keras.Model, int8: bool) -> bytes:
    """`model` as a TFLite flatbuffer of builtin ops (through a temporary SavedModel)."""
    tmp = tempfile.mkdtemp(prefix="birdtpu-export-")
    try:
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights
        return converter.convert()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(reference, runner, waves: np.ndarray) -> dict:
    """Largest absolute difference and top-class agreement of two runners on the same windows."""
    a, b = reference(waves), runner(waves)
    return {
        "check_windows": len(waves),
        "max_abs_diff": float(np.abs(a - b).max()),
        "top1_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
    }


def synthetic_windows(samples: int, sample_rate: int, n: int = 8, seed: int = 0) -> np.ndarray:
    """`n` seeded windows of noise with a rising tone each, for checks where no audio is at hand."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sample_rate
    out = np.empty((n, samples), np.float32)
    for i in range(n):
        f0 = rng.uniform(500, 0.3 * sample_rate)
        tone = np.sin(2 * np.pi * (f0 + 0.05 * f0 * t / t[-1]) * t)
        out[i] = 0.3 * tone * (np.sin(np.pi * t / t[-1]) ** 2) + 0.05 * rng.standard_normal(samples)
    return out


def check_windows_for(cfg, model_path: str, log=print, n: int = 32) -> np.ndarray:
    """Up to `n` clip-length windows of the dataset's soundscapes at the model's rate (synthetic
    windows where there are none), for comparing an export with its Keras model."""
    from birdtpu.data.audio import AudioError
    from birdtpu.fs import join
    from birdtpu.infer.predict import decode, list_recordings
    from birdtpu.infer.runners import read_meta
    from birdtpu.infer.windows import windows

    meta = read_meta(model_path)
    rate, clip = int(meta["sample_rate"]), float(meta["clip_seconds"])
    folder = join(cfg.data.root, cfg.data.soundscape_dir)
    found: list[np.ndarray] = []
    for path in list_recordings(folder) if fs.exists(folder) else []:
        try:
            wave = decode(path, [rate])[rate]
        except AudioError:
            continue
        found.extend(windows(wave, rate, clip)[0][: n - len(found)])
        if len(found) >= n:
            break
    if found:
        log(f"export: checking on {len(found)} windows of {folder}")
        return np.nan_to_num(np.stack(found))
    log(f"export: no recordings in {folder}; checking on synthetic windows")
    return synthetic_windows(int(round(clip * rate)), rate)


def export_model(
    model_path: str,
    fmt: str,
    out: str = "",
    frontend: str = "host",
    check: np.ndarray | None = None,
    batch_size: int = 32,
    threads: int = 0,
    log=print,
) -> dict:
    """Export the `.keras` model at `model_path` as `fmt` and check it against the Keras model.

    `check`: windows (n, samples) to compare on (default: synthetic ones). Returns the sidecar
    written next to the export, with `path` added.
    """
    from birdtpu.infer.runners import KerasRunner, load_model, open_model

    if fmt not in FORMATS:
        raise DataError(f"export format {fmt!r} is not one of {', '.join(FORMATS)}")
    if frontend not in FRONTENDS:
        raise DataError(f"export frontend {frontend!r} is not one of {', '.join(FRONTENDS)}")
    model, meta = load_model(model_path)
    out = out or default_path(model_path, fmt)
    samples = int(model.inputs[0].shape[1])
    remote = fs.is_remote(model_path) or fs.is_remote(out)
    source = model_path if remote else os.path.relpath(model_path, os.path.dirname(out) or ".")
    side = {
        **meta,
        "format": fmt,
        "source": source,
        "input_shape": [None, samples],
        "frontend": None,
    }
    if fmt == "savedmodel":
        _save_savedmodel(inference_model(model), out)
    else:
        if frontend == "host":
            front, rest = split_frontend(model)
            side["frontend"] = keras.saving.serialize_keras_object(front)
            data = _tflite_bytes(rest, fmt == "tflite-int8")
        else:
            data = _tflite_bytes(inference_model(model), fmt == "tflite-int8")
        fs.atomic_write_bytes(out, data)
    fs.write_json(_sidecar(out), side)
    if check is None:
        check = synthetic_windows(samples, meta["sample_rate"])
    reference = KerasRunner(model_path, batch_size, model=model, meta=meta)
    side.update(compare(reference, open_model(out, batch_size, threads), check))
    fs.write_json(_sidecar(out), side)
    where = "on the host" if side["frontend"] else "in the file"
    log(
        f"export: {out} ({fmt}, mel frontend {where}): largest difference to {model_path} "
        f"{side['max_abs_diff']:.2e}, same top class on {side['top1_agreement']:.1%} "
        f"of {side['check_windows']} windows"
    )
    return {**side, "path": out}
