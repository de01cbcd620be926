"""Model files: their formats, where exports go, and the JSON sidecar beside each.

`fit` writes `model.json` in the run folder (classes, sample rate, clip length); `birdtpu export`
writes `<stem>.json` next to each export (the same keys plus the export's settings and its parity
check). `sidecar_path` finds the one a model uses; `export_sidecar` names the one an export gets.
"""

from __future__ import annotations

import os

from birdtpu import fs
from birdtpu.errors import DataError
from birdtpu.fs import join

REQUIRED = ("classes", "sample_rate", "clip_seconds")
# `birdtpu export --format` -> the suffix its file or folder gets after the model's stem
EXPORT_SUFFIXES = {
    "savedmodel": "_savedmodel",
    "tflite": "_fp32.tflite",
    "tflite-int8": "_int8.tflite",
    "onnx": "_onnx.onnx",
    "onnx-int8": "_onnx_int8.onnx",
    "openvino": "_openvino.xml",
    "openvino-fp16": "_openvino_fp16.xml",
    "openvino-int8": "_openvino_int8.xml",
}
EXPORT_FORMATS = tuple(EXPORT_SUFFIXES)
FRONTENDS = ("host", "tflite")  # where an export's mel front end runs: host, or inside the file
SUFFIXES = (".keras", ".tflite", ".onnx", ".xml")
# formats whose numbers are not float32's: predict does not refuse them for their difference
QUANTIZED = ("tflite-int8", "onnx-int8", "openvino-int8")


def _stem(path: str) -> str:
    stem = path.rstrip("/")
    for ext in SUFFIXES:
        if stem.endswith(ext):
            return stem[: -len(ext)]
    return stem


def default_path(model_path: str, fmt: str) -> str:
    """Where export `fmt` goes next to `model_path` (model.keras -> model_fp32.tflite, ...)."""
    stem = model_path[: -len(".keras")] if model_path.endswith(".keras") else model_path
    return stem + EXPORT_SUFFIXES[fmt]


def export_sidecar(path: str) -> str:
    """The sidecar an export at `path` gets: `<stem>.json`."""
    return _stem(path) + ".json"


def sidecar_path(path: str) -> str:
    """The model's own `<stem>.json` where it exists, else `model.json` in the model's folder."""
    own = export_sidecar(path)
    if fs.exists(own):
        return own
    return join(os.path.dirname(path.rstrip("/")) or ".", "model.json")


def read_meta(path: str) -> dict:
    """The model's sidecar (classes, sample_rate, clip_seconds, and for exports their settings)."""
    if not fs.exists(path):
        raise DataError(f"{path}: model not found (run `birdtpu fit` first, or set infer.model)")
    meta_path = sidecar_path(path)
    if not fs.exists(meta_path):
        raise DataError(f"{meta_path}: model metadata not found next to the model")
    meta = fs.read_json(meta_path)
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise DataError(f"{meta_path}: missing {', '.join(missing)}")
    return meta


def model_format(path: str) -> str:
    """keras, savedmodel, tflite, onnx or openvino (an IR .xml), from the extension or the
    folder's contents."""
    for ext, kind in ((".keras", "keras"), (".tflite", "tflite"), (".onnx", "onnx")):
        if path.endswith(ext):
            return kind
    if path.endswith(".xml"):
        return "openvino"
    if fs.exists(join(path, "saved_model.pb")):
        return "savedmodel"
    raise DataError(
        f"{path}: not a model (expected a .keras, .tflite, .onnx or OpenVINO .xml file, or a "
        "SavedModel folder)"
    )
