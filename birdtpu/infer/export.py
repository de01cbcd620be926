"""Export a model saved by `fit` for fast CPU inference: SavedModel, TFLite, ONNX, OpenVINO IR.

| format        | writes (next to the model)        | holds                                            |
|---------------|-----------------------------------|--------------------------------------------------|
| savedmodel    | `<stem>_savedmodel/`              | waveform -> probabilities (serving signature)    |
| tflite        | `<stem>_fp32.tflite`              | float32; XNNPACK runs it                         |
| tflite-int8   | `<stem>_int8.tflite`              | dynamic-range int8 weights, float activations    |
| onnx          | `<stem>_onnx.onnx`                | float32 (tf2onnx on the frozen graph); ONNX Runtime |
| onnx-int8     | `<stem>_onnx_int8.onnx`           | static int8 (QDQ), calibrated on the check windows |
| openvino      | `<stem>_openvino.xml` + `.bin`    | float32 IR (OpenVINO's converter, from a SavedModel) |
| openvino-fp16 | `<stem>_openvino_fp16.xml` + `.bin` | float16 weights, float32 compute             |
| openvino-int8 | `<stem>_openvino_int8.xml` + `.bin` | the onnx-int8 model (QDQ) as IR: int8 compute |

Each export gets a sidecar of its name with `.json` (`model_fp32.json`, ...): the model's classes, sample rate and clip
length, the source `.keras` file, and how far the export's outputs are from the Keras model's on
sample windows (largest absolute difference, share of windows with the same top class). A float
export further than `parity.FLOAT_TOLERANCE` from its Keras model is refused and removed.

The mel frontend: exports use `MelSpectrogramTflite`, the numbers of the model's `keras.ops`
mel layer (or of kapre's, `frontend.impl: kapre`) through `tf.signal`, which TFLite converts. A
TFLite, ONNX or OpenVINO export keeps the frontend out of the file by default (`frontend="host"`):
the sidecar holds it and the runner computes the images on the host (`hostmel.py`: scipy's FFT,
then the frontend's own layers), several times faster than TFLite's FFT; `frontend="tflite"` puts
it inside, for a self-contained file (TFLite and OpenVINO; tf2onnx cannot convert the STFT).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from birdtpu import fs
from birdtpu.data.clip_features import INPUTS as CLIP_INPUTS
from birdtpu.data.clip_features import has_clip_inputs, waveform_input
from birdtpu.errors import DataError
from birdtpu.infer.clip_inputs import windows_clip_inputs
from birdtpu.infer.files import (
    EXPORT_FORMATS,
    FRONTENDS,
    QUANTIZED,
    default_path,
    export_sidecar,
    model_format,
)
from birdtpu.infer.onnx_export import onnx_bytes
from birdtpu.infer.openvino_export import weights_path, write_openvino
from birdtpu.infer.parity import FLOAT_TOLERANCE, compare, synthetic_windows
from birdtpu.infer.runners import KerasRunner, load_model, open_model
from birdtpu.layers.augment import WaveAugment
from birdtpu.layers.frontend import MelSpectrogram, MelSpectrogramTflite, SpecAugment


def _frontend_layer(model: keras.Model):
    """The Sequential frontend (the one holding a MelSpectrogram) that reads the waveform."""
    for layer in model.layers:
        if isinstance(layer, keras.Sequential) and any(
            isinstance(x, MelSpectrogram) for x in layer.layers
        ):
            return layer
    raise DataError(f"{model.name}: no mel frontend (a Sequential with a MelSpectrogram) to export")


def split_frontend(model: keras.Model) -> tuple[keras.Sequential, keras.Model]:
    """(inference frontend: waveform -> image, rest: image -> probabilities) of a `fit` model;
    the rest takes [image, clip_features, clip_seconds] where the model has clip inputs.

    The frontend drops SpecAugment and WaveAugment (identity at inference) and uses
    MelSpectrogramTflite.
    """
    front = _frontend_layer(model)
    layers = [
        MelSpectrogramTflite.from_config(x.get_config()) if isinstance(x, MelSpectrogram) else x
        for x in front.layers
        if not isinstance(x, (SpecAugment, WaveAugment))
    ]
    samples = waveform_input(model).shape[1]
    frontend = keras.Sequential(
        [keras.Input((samples,), name="waveform"), *layers], name="frontend"
    )
    clip = [model.input[k] for k in CLIP_INPUTS] if has_clip_inputs(model) else []
    inputs = [front.output, *clip] if clip else front.output
    return frontend, keras.Model(inputs, model.output, name=f"{model.name}_from_image")


def inference_model(model: keras.Model) -> keras.Model:
    """Waveform (and clip inputs) -> probabilities with the weights of `model` and the
    exportable frontend."""
    frontend, rest = split_frontend(model)
    wave = keras.Input(frontend.input_shape[1:], name="waveform")
    image = frontend(wave)
    if not has_clip_inputs(model):
        return keras.Model(wave, rest(image), name=model.name)
    clip = {k: keras.Input(model.input[k].shape[1:], name=k) for k in CLIP_INPUTS}
    return keras.Model({"waveform": wave, **clip}, rest([image, *clip.values()]), name=model.name)


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


def _write(
    fmt: str, model: keras.Model, out: str, front, check: np.ndarray, clip: dict | None
) -> None:
    """Write `model` (image or waveform in, and the clip inputs) as a TFLite, ONNX or OpenVINO
    file at `out`; `check` (and `clip`) calibrate an int8 export."""
    if fmt.startswith("tflite"):
        fs.atomic_write_bytes(out, _tflite_bytes(model, fmt == "tflite-int8"))
    elif fmt.startswith("onnx") or fmt == "openvino-int8":
        calibration = None
        if fmt.endswith("-int8"):
            images = keras.ops.convert_to_numpy(front(check))
            calibration = [
                (clip or {}).get(t.name, images if len(t.shape) == 4 else check)
                for t in model.inputs
            ]
        onnx = onnx_bytes(model, calibration)
        if fmt == "openvino-int8":  # OpenVINO runs the QDQ model's convolutions in int8
            write_openvino(model, out, onnx=onnx)
        else:
            fs.atomic_write_bytes(out, onnx)
    else:
        write_openvino(model, out, fp16=fmt == "openvino-fp16")


def _remove_export(out: str) -> None:
    """Remove an export, its weights (OpenVINO) and its sidecar."""
    if model_format(out) == "savedmodel":
        fs.rmtree(out)
    else:
        fs.discard(out)
        if out.endswith(".xml"):
            fs.discard(weights_path(out))
    fs.discard(export_sidecar(out))


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
    if fmt not in EXPORT_FORMATS:
        raise DataError(f"export format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    if frontend not in FRONTENDS:
        raise DataError(f"export frontend {frontend!r} is not one of {', '.join(FRONTENDS)}")
    model, meta = load_model(model_path)
    out = out or default_path(model_path, fmt)
    samples = int(waveform_input(model).shape[1])
    remote = fs.is_remote(model_path) or fs.is_remote(out)
    source = model_path if remote else os.path.relpath(model_path, os.path.dirname(out) or ".")
    side = {
        **meta,
        "format": fmt,
        "source": source,
        "input_shape": [None, samples],
        "frontend": None,
    }
    if check is None:
        check = synthetic_windows(samples, meta["sample_rate"])
    clip = windows_clip_inputs(meta, check)
    if fmt == "savedmodel":
        _save_savedmodel(inference_model(model), out)
    else:
        front, rest = split_frontend(model)
        if (fmt.startswith("onnx") or fmt == "openvino-int8") and frontend != "host":
            raise DataError(
                f"export: {model_path}: the mel front end cannot go inside an ONNX file (tf2onnx "
                "does not convert the STFT); use --frontend host, or --format openvino"
            )
        if frontend == "host":
            side["frontend"] = keras.saving.serialize_keras_object(front)
        full = rest if frontend == "host" else inference_model(model)
        _write(fmt, full, out, front, check, clip)
    fs.write_json(export_sidecar(out), side)
    reference = KerasRunner(model_path, batch_size, model=model, meta=meta)
    side.update(compare(reference, open_model(out, batch_size, threads), check, clip))
    fs.write_json(export_sidecar(out), side)
    if fmt not in QUANTIZED and side["max_abs_diff"] > FLOAT_TOLERANCE:
        _remove_export(out)
        raise DataError(
            f"export: {out} differs from {model_path} by {side['max_abs_diff']:.2e} (over "
            f"{FLOAT_TOLERANCE}) on {side['check_windows']} windows; removed"
        )
    where = "on the host" if side["frontend"] else "in the file"
    log(
        f"export: {out} ({fmt}, mel frontend {where}): largest difference to {model_path} "
        f"{side['max_abs_diff']:.2e}, same top class on {side['top1_agreement']:.1%} "
        f"of {side['check_windows']} windows"
    )
    return {**side, "path": out}
