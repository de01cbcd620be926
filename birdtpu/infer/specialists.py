"""Taxon specialists in `birdtpu predict`: a run trained on some taxa's classes (`data.taxa`)
writes its columns into the main blend (`infer.specialists: [{run: runs/frogs, weight: 1.0}]`).

Each specialist scores the same windows as the main models (its TTA as configured); its columns
are matched to the main model's by class name, then `scatter` sets them to
`weight * specialist + (1 - weight) * main` (weight 1 replaces them). This runs after the main
models' blend and before `infer.smooth` and `infer.postprocess`, in the recipe's order.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from birdtpu import fs
from birdtpu.errors import ConfigError, DataError
from birdtpu.fs import join

KEY = "infer.specialists"
_MODEL_SUFFIXES = (".keras", ".tflite", ".onnx", ".xml")


@dataclasses.dataclass(frozen=True)
class Specialist:
    """An opened specialist: its runner, the main model's column of each of its classes, weight."""

    runner: object
    columns: np.ndarray
    weight: float


def check_entries(entries: list) -> list[tuple[str, float]]:
    """(run, weight) of each entry of infer.specialists; ConfigError naming the entry."""
    out = []
    for i, entry in enumerate(entries):
        where = f"{KEY}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where}: expected {{run: <run folder>, weight: <0-1>}}, got {entry!r}"
            )
        unknown = sorted(set(map(str, entry)) - {"run", "weight"})
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (keys: run, weight)")
        run, weight = entry.get("run"), entry.get("weight", 1.0)
        if not isinstance(run, str) or not run.strip():
            raise ConfigError(f"{where}.run: expected a run folder or model file, got {run!r}")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
            raise ConfigError(f"{where}.weight: expected a number, got {weight!r}")
        if not 0 < weight <= 1:
            raise ConfigError(f"{where}.weight: must be above 0 and at most 1, got {weight!r}")
        out.append((run.strip(), float(weight)))
    return out


def model_path(run: str) -> str:
    """The model of a specialist `run`: a model file or SavedModel folder as it is, a run folder's
    model.keras; ConfigError where there is none."""
    path = run.rstrip("/")
    if not path.endswith(_MODEL_SUFFIXES) and not fs.exists(join(path, "saved_model.pb")):
        path = join(path, "model.keras")
    if not fs.exists(path):
        raise ConfigError(f"{KEY}: {run}: no model there (expected {path})")
    return path


def open_specialists(entries: list, classes: list[str], open_model) -> list[Specialist]:
    """The specialists of `entries` opened with `open_model(path)`, each class matched to a column
    of the main model's `classes`; a class the main model lacks is a DataError."""
    index = {c: k for k, c in enumerate(classes)}
    out = []
    for run, weight in check_entries(entries):
        runner = open_model(model_path(run))
        missing = [c for c in runner.classes if c not in index]
        if missing:
            raise DataError(
                f"{KEY}: {runner.path}: class {missing[0]!r} is not a class of the main model "
                f"({len(missing)} of its {len(runner.classes)} missing)"
            )
        columns = np.array([index[c] for c in runner.classes], np.int64)
        out.append(Specialist(runner, columns, weight))
    return out


def scatter(main: np.ndarray, columns: np.ndarray, spec: np.ndarray, weight: float) -> np.ndarray:
    """`main` (rows, classes) with columns `columns` set to `weight * spec + (1 - weight) * main`
    (spec: rows x len(columns), in `columns` order); a new array, `main` is kept."""
    out = np.array(main, copy=True)
    if weight >= 1:
        out[:, columns] = spec
    else:
        out[:, columns] = weight * spec + (1 - weight) * out[:, columns]
    return out
