"""`birdtpu predict`: soundscapes cut into fixed windows, scored by a saved model, submission.csv.

Row ids follow BirdCLEF: `<soundscape stem>_<end second>`; the last partial window is padded
with zeros. A recording that cannot be decoded is reported and counted; the others are
still predicted.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from birdtpu import io
from birdtpu.config import join
from birdtpu.data.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from birdtpu.errors import DataError


def windows(wave: np.ndarray, sample_rate: int, seconds: float) -> tuple[np.ndarray, list[int]]:
    """(n, samples) windows of `wave` and the end second of each; the last one zero-padded."""
    size = int(round(seconds * sample_rate))
    n = max(1, math.ceil(len(wave) / size))
    padded = np.zeros(n * size, np.float32)
    padded[: len(wave)] = wave
    ends = [int(round((i + 1) * seconds)) for i in range(n)]
    return padded.reshape(n, size), ends


def list_recordings(folder: str) -> list[str]:
    """Audio files directly in `folder`, sorted."""
    import tensorflow as tf

    if not io.exists(folder):
        raise DataError(f"{folder}: soundscape folder not found")
    names = sorted(n for n in tf.io.gfile.listdir(folder) if n.lower().endswith(AUDIO_EXTENSIONS))
    return [join(folder, n) for n in names]


def load_model(path: str):
    """A model saved by `fit` (safe_mode on) and its sidecar model.json (classes, rate, clip)."""
    import keras

    meta_path = join(os.path.dirname(path), "model.json")
    if not io.exists(path):
        raise DataError(f"{path}: model not found (run `birdtpu fit` first, or set infer.model)")
    if not io.exists(meta_path):
        raise DataError(f"{meta_path}: model metadata not found next to the model")
    import birdtpu.layers.frontend  # noqa: F401  (registers the layers for deserialization)

    return keras.models.load_model(path, compile=False, safe_mode=True), io.read_json(meta_path)


def predict_recordings(model, meta: dict, paths: list[str], window_seconds: float, batch_size: int,
                       log=print) -> tuple[pd.DataFrame, list[dict]]:
    """A submission-shaped table (row_id + one column per class) and the files skipped."""
    rate, clip = meta["sample_rate"], meta["clip_seconds"]
    if abs(window_seconds - clip) > 1e-6:
        raise DataError(f"infer.window_seconds {window_seconds} differs from the model's clip length {clip}")
    rows, preds, skipped = [], [], []
    for path in paths:
        try:
            wave, _ = load_audio(path, rate)
        except AudioError as err:
            skipped.append({"file": path, "reason": err.reason})
            log(f"predict: skip {path}: {err.reason}")
            continue
        batch, ends = windows(wave, rate, window_seconds)
        stem = os.path.splitext(os.path.basename(path))[0]
        rows.extend(f"{stem}_{end}" for end in ends)
        preds.append(model.predict(batch, batch_size=batch_size, verbose=0))
    table = pd.DataFrame(np.concatenate(preds) if preds else np.zeros((0, len(meta["classes"]))),
                         columns=meta["classes"])
    table.insert(0, "row_id", rows)
    return table, skipped


def validate_submission(table: pd.DataFrame, classes: list[str]) -> None:
    """Refuse a submission with duplicate ids, missing columns, NaN or values outside [0, 1]."""
    missing = [c for c in ["row_id", *classes] if c not in table.columns]
    if missing:
        raise DataError(f"submission: missing column(s) {', '.join(missing[:5])}")
    dup = table["row_id"].duplicated()
    if dup.any():
        raise DataError(f"submission: duplicate row_id {table.row_id[dup].iloc[0]!r}")
    values = table[classes].to_numpy(np.float64)
    if np.isnan(values).any():
        raise DataError(f"submission: NaN in row {table.row_id.iloc[np.isnan(values).any(1).argmax()]!r}")
    if (values < 0).any() or (values > 1).any():
        raise DataError("submission: probabilities outside [0, 1]")


def predict(cfg, log=print) -> dict:
    """Predict the soundscapes of `cfg` and write the submission; returns a summary."""
    model_path = cfg.infer.model or join(cfg.run_dir, "model.keras")
    model, meta = load_model(model_path)
    folder = join(cfg.data.root, cfg.data.soundscape_dir)
    paths = list_recordings(folder)
    if not paths:
        raise DataError(f"{folder}: no recordings ({', '.join(AUDIO_EXTENSIONS)}) to predict")
    table, skipped = predict_recordings(model, meta, paths, cfg.infer.window_seconds, cfg.infer.batch_size, log)
    validate_submission(table, meta["classes"])
    out = cfg.infer.submission or join(cfg.run_dir, "submission.csv")
    io.atomic_write_text(out, table.to_csv(index=False))
    summary = {"submission": out, "rows": len(table), "files": len(paths) - len(skipped), "skipped": skipped}
    truth_path = join(cfg.data.root, "soundscape_labels.csv")
    if io.exists(truth_path):
        summary["macro_roc_auc"] = _score(table, truth_path, meta["classes"])
    log(f"predict: {summary['rows']} windows of {summary['files']} recordings, {len(skipped)} skipped -> {out}"
        + (f"; macro ROC-AUC against {truth_path}: {summary['macro_roc_auc']:.4f}" if "macro_roc_auc" in summary else ""))
    return summary


def _score(table: pd.DataFrame, truth_path: str, classes: list[str]) -> float:
    from birdtpu.metrics import macro_roc_auc

    truth = pd.read_csv(truth_path).set_index("row_id").reindex(table["row_id"])
    if truth.isna().any().any():
        raise DataError(f"{truth_path}: has no truth for some predicted rows (e.g. {truth.index[truth.isna().any(axis=1)][0]})")
    return macro_roc_auc(truth[classes].to_numpy() > 0, table[classes].to_numpy())
