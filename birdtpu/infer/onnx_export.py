"""ONNX exports: tf2onnx on the model's frozen TensorFlow graph, float32, or int8 by static
quantization on a calibration set of real windows.

The graph is the model's inference call traced as one `tf.function` with every weight and captured
tensor frozen into constants, then converted with `tf2onnx.convert.from_graph_def` (opset 17).
Keras' own `model.export(format="onnx")` was tried first: it leaves the constants that a layer
computes once and captures (the mean and variance of EfficientNet's Normalization layer) as graph
inputs without values, so the exported EfficientNet cannot run. The export runs under the
TensorFlow backend. tf2onnx cannot convert the complex |STFT| of the mel layer (ComplexAbs), so an
ONNX export keeps the mel front end on the host (`hostmel.py`); `export.py` refuses
`frontend="tflite"` (inside the file) for ONNX.

The int8 export quantizes weights and activations (QDQ, per-channel weights) with ONNX Runtime's
`quantize_static`, its activation ranges calibrated on the front end's images of the check windows
(the dataset's soundscapes where there are any), so its numbers differ from the float model's.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras
import numpy as np

from birdtpu.errors import DataError


def _need(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise DataError(
            f"ONNX export needs {module}: pip install 'birdtpu[onnx]' (tf2onnx, onnx, onnxruntime)"
        ) from None


def _calibration_reader(path: str, feeds: list[np.ndarray]):
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader

    names = [i.name for i in ort.InferenceSession(path).get_inputs()]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(
                [{n: x[i : i + 1] for n, x in zip(names, feeds)} for i in range(len(feeds[0]))]
            )

        def get_next(self):
            return next(self._items, None)

    return Reader()


OPSET = 17


def _frozen_onnx(model: keras.Model, path: str) -> None:
    """Write `model`'s inference call as ONNX at `path` (see the module docstring)."""
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    if keras.backend.backend() != "tensorflow":
        raise DataError(
            "ONNX export runs under the TensorFlow backend: set KERAS_BACKEND=tensorflow"
        )
    specs = [  # named as the model's inputs: runners match the clip inputs by name
        tf.TensorSpec([None, *t.shape[1:]], tf.float32, name=t.name.replace(":", "_"))
        for t in model.inputs
    ]
    fn = tf.function(
        lambda *xs: model(keras.tree.pack_sequence_as(model.input, list(xs)), training=False)
    )
    frozen = convert_variables_to_constants_v2(fn.get_concrete_function(*specs))
    graph = frozen.graph.as_graph_def()
    proto, _ = tf2onnx.convert.from_graph_def(
        graph,
        input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs],
        opset=OPSET,
    )
    with open(path, "wb") as fh:
        fh.write(proto.SerializeToString())


def onnx_bytes(model: keras.Model, calibration: list[np.ndarray] | None = None) -> bytes:
    """`model` as an ONNX file: float32, or int8 (static, QDQ) where `calibration` holds the
    model's inputs (one array per input) to calibrate the activation ranges on."""
    _need("tf2onnx")
    _need("onnxruntime")
    tmp = tempfile.mkdtemp(prefix="birdtpu-onnx-")
    try:
        path = os.path.join(tmp, "model.onnx")
        _frozen_onnx(model, path)
        if calibration is not None:
            from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

            out = os.path.join(tmp, "model_int8.onnx")
            quantize_static(
                path,
                out,
                _calibration_reader(path, calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
            )
            path = out
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
