"""Perch v2 as a teacher: 5-s windows at 32 kHz -> a 1536-wide embedding and 14795 label logits.

The model is a file the user downloads (Apache 2.0; docs/teachers.md) and names as
`perch:PATH`:
- a SavedModel folder (Kaggle `google/bird-vocalization-classifier/tensorFlow2/perch_v2` or
  `perch_v2_cpu`): its `serving_default` signature takes one (batch, 160000) float32 waveform
  and returns a dict with `embedding` (batch, 1536) and `label` (batch, classes), beside
  `spatial_embedding` and `spectrogram`; the class names are `assets/labels.csv`;
- an ONNX file of that model (one input, outputs named `embedding` and `label`), its class names
  in `labels.csv` next to it.
A labels.csv has one class per line after its header line (the first column).
The waveform goes in as it is (no normalisation; see docs/teachers.md).
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from birdtpu import fs
from birdtpu.errors import ConfigError
from birdtpu.teachers import Teacher

OUTPUTS = ("embedding", "label")


def read_labels(path: str) -> list[str]:
    """The class names of a Perch labels.csv: the first column after the header line."""
    if not fs.exists(path):
        raise ConfigError(f"embed.teacher: {path}: the Perch class list (labels.csv) is missing")
    rows = [r for r in csv.reader(io.StringIO(fs.read_text(path))) if r and r[0].strip()]
    return [r[0].strip() for r in rows[1:]]


class Perch(Teacher):
    """Perch v2 from a SavedModel folder or an .onnx file."""

    name = "perch-v2"
    sample_rate = 32000
    window_seconds = 5.0

    def __init__(self, path: str):
        if fs.isdir(path):
            labels = os.path.join(path, "assets", "labels.csv")
            self._run = self._savedmodel(path)
        elif path.endswith(".onnx"):
            labels = os.path.join(os.path.dirname(path) or ".", "labels.csv")
            self._run = self._onnx(path)
        else:
            raise ConfigError(
                f"embed.teacher: {path}: a Perch model is a SavedModel folder or an .onnx file"
            )
        classes = read_labels(labels)
        super().__init__(f"perch:{path}", path, classes, classes)
        emb, logits = self._run(np.zeros((1, self.samples), np.float32))
        if logits.shape[-1] != len(classes):
            raise ConfigError(
                f"embed.teacher: {path}: {logits.shape[-1]} label logits but {len(classes)} "
                f"classes in {labels}"
            )
        self.dim = int(emb.shape[-1])

    def _savedmodel(self, path: str):
        import tensorflow as tf

        try:
            signature = tf.saved_model.load(path).signatures["serving_default"]
        except (OSError, KeyError, ValueError) as err:
            raise ConfigError(
                f"embed.teacher: {path}: not a SavedModel with a serving_default signature "
                f"({str(err).splitlines()[0][:160]})"
            ) from None
        inputs = signature.structured_input_signature[1]
        missing = [k for k in OUTPUTS if k not in signature.structured_outputs]
        if len(inputs) != 1 or missing:
            raise ConfigError(
                f"embed.teacher: {path}: expected one waveform input and outputs "
                f"{', '.join(OUTPUTS)} (Perch v2's signature)"
            )
        (name,) = inputs

        def run(x):
            out = signature(**{name: tf.constant(x)})
            return tuple(np.asarray(out[k].numpy(), np.float32) for k in OUTPUTS)

        return run

    def _onnx(self, path: str):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(
                f"embed.teacher: {path}: an ONNX Perch needs onnxruntime: pip install 'birdtpu[onnx]'"
            ) from None
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        missing = [k for k in OUTPUTS if k not in names]
        if len(session.get_inputs()) != 1 or missing:
            raise ConfigError(
                f"embed.teacher: {path}: expected one waveform input and outputs "
                f"{', '.join(OUTPUTS)}, got outputs {names}"
            )
        name = session.get_inputs()[0].name

        def run(x):
            return tuple(np.asarray(v, np.float32) for v in session.run(list(OUTPUTS), {name: x}))

        return run

    def _embed(self, windows):
        return self._run(windows)
