"""A tiny stand-in for Perch v2 (the real one cannot be fetched here): the same signature, 5-s
windows at 32 kHz in, `embedding` (1536) and `label` logits out, as a SavedModel folder or an
ONNX file, with a labels.csv. Its function is simple enough to compute in NumPy (`reference`):
embedding = relu(mean over 1000 frames of |frame @ F| @ W), label = embedding @ V, with frames
of 160 samples and fixed random F, W, V."""

from __future__ import annotations

import os

import numpy as np

SAMPLES, FRAME, DIM = 160000, 160, 1536
CLASSES = [
    "Parus major",
    "Lonchura striata",
    "Turdus merula",
    "Erithacus rubecula",
    "Fringilla coelebs",
]


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "F": np.cos(np.pi / FRAME * np.outer(np.arange(FRAME) + 0.5, np.arange(FRAME))).astype(
            np.float32
        ),
        "W": (rng.standard_normal((FRAME, DIM)) / np.sqrt(FRAME)).astype(np.float32),
        "V": (rng.standard_normal((DIM, len(CLASSES))) / np.sqrt(DIM)).astype(np.float32),
    }


def reference(x: np.ndarray, w: dict) -> tuple[np.ndarray, np.ndarray]:
    """What the stand-in computes, in float64 NumPy."""
    frames = np.asarray(x, np.float64).reshape(len(x), SAMPLES // FRAME, FRAME)
    feat = np.abs(frames @ w["F"]).mean(axis=1)
    emb = np.maximum(feat @ w["W"], 0.0)
    return emb, emb @ w["V"]


def _labels(path: str) -> None:
    with open(path, "w") as fh:
        fh.write("inat2024_fsd50k\n" + "".join(f"{c}\n" for c in CLASSES))


def save_savedmodel(path: str, seed: int = 0) -> str:
    """The stand-in as a SavedModel folder with assets/labels.csv; returns `path`."""
    import tensorflow as tf

    w = weights(seed)

    class StandIn(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = {k: tf.Variable(v, trainable=False, name=k) for k, v in w.items()}

        @tf.function(input_signature=[tf.TensorSpec([None, SAMPLES], tf.float32)])
        def serve(self, inputs):
            frames = tf.reshape(inputs, [-1, SAMPLES // FRAME, FRAME])
            feat = tf.reduce_mean(tf.abs(tf.matmul(frames, self.w["F"])), axis=1)
            emb = tf.nn.relu(tf.matmul(feat, self.w["W"]))
            n = tf.shape(inputs)[0]
            return {
                "embedding": emb,
                "label": tf.matmul(emb, self.w["V"]),
                "spatial_embedding": tf.zeros([n, 16, 4, DIM]),
                "spectrogram": tf.zeros([n, 500, 128]),
            }

    module = StandIn()
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    os.makedirs(os.path.join(path, "assets"), exist_ok=True)
    _labels(os.path.join(path, "assets", "labels.csv"))
    return path


def save_onnx(folder: str, seed: int = 0) -> str:
    """The stand-in as `folder`/perch_v2.onnx with labels.csv beside it; returns the file."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = weights(seed)
    shape = np.array([-1, SAMPLES // FRAME, FRAME], np.int64)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits.append(numpy_helper.from_array(shape, "shape"))
    nodes = [
        helper.make_node("Reshape", ["inputs", "shape"], ["frames"]),
        helper.make_node("MatMul", ["frames", "F"], ["spec"]),
        helper.make_node("Abs", ["spec"], ["mag"]),
        helper.make_node("ReduceMean", ["mag"], ["feat"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["feat", "W"], ["pre"]),
        helper.make_node("Relu", ["pre"], ["embedding"]),
        helper.make_node("MatMul", ["embedding", "V"], ["label"]),
    ]
    graph = helper.make_graph(
        nodes,
        "perch_standin",
        [helper.make_tensor_value_info("inputs", TensorProto.FLOAT, ["n", SAMPLES])],
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["n", DIM]),
            helper.make_tensor_value_info("label", TensorProto.FLOAT, ["n", len(CLASSES)]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "perch_v2.onnx")
    onnx.save(model, path)
    _labels(os.path.join(folder, "labels.csv"))
    return path
