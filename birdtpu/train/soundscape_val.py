"""Validation on labelled soundscapes: window-level macro ROC-AUC (classes with a positive and a
negative window; `birdtpu.metrics.soundscape_scores`), the BirdCLEF+ 2025/2026 score.

`train.soundscape_val` names a `train_soundscapes_labels.csv` (relative to `data.root` unless
absolute); its audio is in `train_soundscapes/` beside it. Every 5-s window of each soundscape
that has a row is scored; a window without a row is taken as empty (as
`birdtpu.data.catalog.birdclef_plus` documents). The model scores its own windows
(`infer.window_seconds` every `infer.hop_seconds`, with neighbouring context where its clip is
longer, no TTA); a label window takes, per class, the maximum over the model windows whose
centre lies in it (else over those overlapping it). `SoundscapeValidation` logs the score as
`val_soundscape_auc` at each epoch end, before the checkpoint, early stopping and history see
the logs, so `train.monitor: val_soundscape_auc` selects on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog.birdclef_plus import (
    SOUNDSCAPE_DIR,
    list_unlabelled_soundscapes,
    read_soundscape_labels,
)
from birdtpu.errors import ConfigError, DataError
from birdtpu.fs import join
from birdtpu.infer.recordings import decode
from birdtpu.infer.windows import windows
from birdtpu.metrics.scores import soundscape_scores
from birdtpu.train.batch_predict import predict_padded

LABEL_WINDOW = 5.0  # seconds: the competition's scoring windows
METRIC = "val_soundscape_auc"


@dataclass
class Soundscapes:
    """Model windows of some soundscapes and the truth of their label windows.

    `clips` (model windows, samples) float32; `groups[i]` the indices of `clips` pooled into
    label window i; `truth` (label windows, classes) 0/1; `row_ids` of the label windows."""

    clips: np.ndarray
    groups: list[np.ndarray]
    truth: np.ndarray
    row_ids: list[str]
    classes: list[str]


def labels_path(cfg, setting: str | None = None) -> str:
    """`setting` (default train.soundscape_val) resolved against data.root; '' when unset."""
    path = cfg.train.soundscape_val if setting is None else setting
    if not path or fs.is_remote(path) or os.path.isabs(path):
        return path
    return join(cfg.data.root, path)


def _pool_groups(starts: np.ndarray, window: float, lo: float, hi: float) -> np.ndarray:
    """Indices of the model windows (starting at `starts`, `window` long) pooled into [lo, hi)."""
    centres = starts + window / 2
    inside = np.flatnonzero((centres >= lo) & (centres < hi))
    if len(inside):
        return inside
    return np.flatnonzero((starts < hi) & (starts + window > lo))


def load_soundscapes(
    grid: pd.DataFrame,
    positives: dict[str, list[str]],
    classes: list[str],
    sample_rate: int,
    clip_seconds: float,
    window: float,
    hop: float = 0.0,
) -> Soundscapes:
    """Decode the soundscapes of `grid` (columns filepath, row_id, start, end: one row per label
    window) and cut them into model windows; `positives` maps a row id to its labels (a missing
    id: no call)."""
    if window > clip_seconds:
        raise ConfigError(
            f"infer.window_seconds: {window} s is longer than the model's clip ({clip_seconds} s)"
        )
    known = {c: k for k, c in enumerate(classes)}
    context, step = (clip_seconds - window) / 2, hop or window
    clips, groups, offset = [], [], 0
    truth = np.zeros((len(grid), len(classes)), np.int8)
    for i, rid in enumerate(grid["row_id"]):
        for label in positives.get(rid, ()):
            truth[i, known[label]] = 1
    for path, rows in grid.groupby("filepath", sort=False):
        wave = decode(path, [sample_rate])[sample_rate]
        wave[~np.isfinite(wave)] = 0.0
        cut, _ = windows(wave, sample_rate, window, step, context)
        starts = np.arange(len(cut)) * step
        for lo, hi in zip(rows["start"], rows["end"]):
            groups.append(offset + _pool_groups(starts, window, lo, hi))
        clips.append(np.asarray(cut, np.float32))
        offset += len(cut)
    return Soundscapes(np.concatenate(clips), groups, truth, list(grid["row_id"]), classes)


def from_labels(cfg, classes: list[str], path: str | None = None) -> Soundscapes:
    """The labelled soundscapes of `path` (default `labels_path(cfg)`): every label window of
    each file that has a row in the labels CSV."""
    path = path or labels_path(cfg)
    if not fs.exists(path):
        raise DataError(f"train.soundscape_val: {path} does not exist")
    audio_dir = join(os.path.dirname(path) or ".", SOUNDSCAPE_DIR)
    labelled = read_soundscape_labels(path, audio_dir, classes, LABEL_WINDOW)
    grid = list_unlabelled_soundscapes(audio_dir, LABEL_WINDOW)
    grid = grid[grid["filename"].isin(set(labelled["filename"]))].reset_index(drop=True)
    positives = dict(zip(labelled["row_id"], labelled["labels"]))
    outside = sorted(set(positives) - set(grid["row_id"]))
    if outside:
        raise DataError(f"{path}: window {outside[0]!r} is past the end of its soundscape")
    return _load(cfg, grid, positives, classes)


def from_truth(cfg, truth_csv: str, folder: str, classes: list[str]) -> Soundscapes:
    """Every label window of the soundscapes in `folder` with its 0/1 truth from `truth_csv`
    (row_id and a column per class, as synth's train_soundscapes_truth.csv)."""
    truth = pd.read_csv(truth_csv)
    missing = [c for c in classes if c not in truth.columns]
    if missing:
        raise DataError(f"{truth_csv}: no column for class {missing[0]!r}")
    values = truth[classes].to_numpy() > 0
    positives = {
        rid: [c for c, on in zip(classes, row) if on] for rid, row in zip(truth["row_id"], values)
    }
    grid = list_unlabelled_soundscapes(folder, LABEL_WINDOW)
    unknown = sorted(set(grid["row_id"]) - set(positives))
    if unknown:
        raise DataError(f"{truth_csv}: no row for window {unknown[0]!r}")
    return _load(cfg, grid, positives, classes)


def _load(cfg, grid, positives, classes) -> Soundscapes:
    inf = cfg.infer
    return load_soundscapes(
        grid,
        positives,
        classes,
        cfg.data.sample_rate,
        cfg.frontend.clip_seconds,
        inf.window_seconds,
        inf.hop_seconds,
    )


def window_predictions(
    model, scapes: Soundscapes, batch_size: int = 32, replicas: int = 1
) -> np.ndarray:
    """(label windows, classes) probabilities of `model`: its model-window outputs pooled by max.
    Batches are padded to a multiple of `replicas` (a JAX batch splits evenly over devices)."""
    scores = np.concatenate(
        [
            predict_padded(model, scapes.clips[i : i + batch_size], replicas)
            for i in range(0, len(scapes.clips), batch_size)
        ]
    )
    return np.stack([scores[g].max(axis=0) for g in scapes.groups])


def score(model, scapes: Soundscapes, batch_size: int = 32, replicas: int = 1) -> dict:
    """`soundscape_scores` of `model` on `scapes` plus `windows` (label windows scored)."""
    preds = window_predictions(model, scapes, batch_size, replicas)
    return {**soundscape_scores(scapes.truth, preds), "windows": len(preds)}


class SoundscapeValidation(keras.callbacks.Callback):
    """Adds `val_soundscape_auc` (window macro AUC on `scapes`) to each epoch's logs."""

    def __init__(self, scapes: Soundscapes, batch_size: int = 32, replicas: int = 1):
        super().__init__()
        self.scapes, self.batch_size, self.replicas = scapes, int(batch_size), int(replicas)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            result = score(self.model, self.scapes, self.batch_size, self.replicas)
            logs[METRIC] = result["window_macro_auc"]


def make_callback(cfg, classes: list[str], replicas: int = 1, log=print):
    """The callback of `train.soundscape_val`, or None where it is unset."""
    if not cfg.train.soundscape_val:
        if cfg.train.monitor == METRIC:
            raise ConfigError(f"train.monitor: {METRIC} needs train.soundscape_val")
        return None
    scapes = from_labels(cfg, classes)
    log(
        f"fit: validating on {len(scapes.row_ids)} windows of labelled soundscapes "
        f"({labels_path(cfg)}) every epoch as {METRIC}"
    )
    return SoundscapeValidation(scapes, cfg.train.batch_size * replicas, replicas)
