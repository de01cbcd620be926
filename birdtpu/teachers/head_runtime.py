"""An embedding head file of any format (.keras, SavedModel, .tflite, .onnx) as one function of
the teacher's embeddings, for `HeadRunner` (exports: `head_export.py`)."""

from __future__ import annotations

import numpy as np

from birdtpu import fs, saving
from birdtpu.errors import DataError
from birdtpu.infer.files import model_format


def keras_function(model):
    """A Keras head as a function of embeddings (n, dim) -> probabilities (n, classes)."""
    return lambda emb: np.asarray(model(emb, training=False), np.float32)


def _savedmodel_function(path: str):
    import tensorflow as tf

    obj = tf.saved_model.load(path)
    signature = obj.signatures["serving_default"]
    ((name, _),) = signature.structured_input_signature[1].items()

    def run(emb):
        (out,) = signature(**{name: tf.constant(emb)}).values()
        return out.numpy()

    run.obj = obj  # the loaded object owns the signature's variables
    return run


def _tflite_function(path: str, threads: int):
    import tensorflow as tf

    try:
        interpreter = tf.lite.Interpreter(model_path=path, num_threads=threads or None)
    except (ValueError, RuntimeError) as err:
        raise DataError(
            f"{path}: not a readable TFLite model ({str(err).splitlines()[0][:160]})"
        ) from None
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    shape = []

    def run(emb):
        if shape != list(emb.shape):
            shape[:] = emb.shape
            interpreter.resize_tensor_input(index, shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(index, emb)
        interpreter.invoke()
        return interpreter.get_tensor(output).copy()

    return run


def _onnx_function(path: str, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise DataError(
            f"{path}: running it needs onnxruntime: pip install 'birdtpu[onnx]'"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(
            fs.read_bytes(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own error types for a bad file
        raise DataError(
            f"{path}: not a readable ONNX model ({str(err).splitlines()[0][:160]})"
        ) from None
    name = session.get_inputs()[0].name
    return lambda emb: np.asarray(session.run(None, {name: emb})[0], np.float32)


def head_function(path: str, threads: int = 0):
    """The head at `path` (.keras, SavedModel folder, .tflite or .onnx) as a function of
    embeddings (n, dim) float32 -> probabilities (n, classes) float32."""
    kind = model_format(path)
    if kind == "keras":
        return keras_function(saving.load_model(path))
    if kind == "savedmodel":
        return _savedmodel_function(path)
    if kind == "tflite":
        return _tflite_function(path, threads)
    if kind == "onnx":
        return _onnx_function(path, threads)
    raise DataError(f"{path}: an embedding head runs as .keras, SavedModel, .tflite or .onnx")
