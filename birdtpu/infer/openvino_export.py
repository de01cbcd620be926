"""OpenVINO IR exports (`.xml` + `.bin`): OpenVINO's converter from a SavedModel of the model.

The SavedModel route (`openvino.convert_model` on the TensorFlow graph) is used rather than going
through ONNX: it needs no tf2onnx, and OpenVINO's TensorFlow front end converts the STFT of the
mel layer, so the front end can also go inside the file (`frontend="tflite"`). `fp16` stores the
weights in float16 (half the file); the CPU computes in float32 either way (the runner asks for
f32 inference precision, where OpenVINO would otherwise pick bf16 on CPUs that have it).
`openvino-int8` converts the calibrated int8 ONNX model (QDQ) instead: OpenVINO's CPU plugin
runs its quantized convolutions and matmuls in int8 (the front end stays on the host).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras

from birdtpu import fs
from birdtpu.errors import DataError


def weights_path(xml: str) -> str:
    """The `.bin` beside an IR `.xml`."""
    return xml[: -len(".xml")] + ".bin"


def write_openvino(
    model: keras.Model, out: str, fp16: bool = False, onnx: bytes | None = None
) -> None:
    """Write `model` as OpenVINO IR at `out` (.xml) and its weights beside it (.bin); from the
    ONNX file `onnx` where given (the int8 export), else from a SavedModel of `model`."""
    try:
        import openvino as ov
    except ImportError:
        raise DataError("OpenVINO export needs openvino: pip install 'birdtpu[openvino]'") from None
    if not out.endswith(".xml"):
        raise DataError(f"{out}: an OpenVINO export is an .xml file (its weights go beside it)")
    tmp = tempfile.mkdtemp(prefix="birdtpu-openvino-")
    try:
        source = os.path.join(tmp, "model.onnx" if onnx else "saved_model")
        if onnx:
            with open(source, "wb") as fh:
                fh.write(onnx)
        else:
            model.export(source, format="tf_saved_model", verbose=False)
        xml = os.path.join(tmp, "model.xml")
        ov.save_model(ov.convert_model(source), xml, compress_to_fp16=fp16)
        with open(weights_path(xml), "rb") as fh:
            fs.atomic_write_bytes(weights_path(out), fh.read())
        with open(xml, "rb") as fh:
            fs.atomic_write_bytes(out, fh.read())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
