"""The worst validation clips of a run as a table (scores, audio, spectrogram), and their audio read
from the shards."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import tensorflow as tf

from birdtpu.metrics import align_tables
from birdtpu.plots import spectrogram_rgb
from birdtpu.tracking.cells import AudioClip, Picture


def worst_clips_table(
    oof,
    truth,
    audio: Mapping | Callable | None,
    k: int = 16,
    top: int = 3,
    spectrogram: Callable | None = None,
):
    """The `k` validation clips with the highest binary cross-entropy (mean over classes), worst first.

    `oof` and `truth` are tables of `row_id` + one column per class (fit's oof_fold<k>.csv and
    truth_fold<k>.csv). `audio` gives a clip's (wave, sample_rate) by row id: a mapping, a
    callable, or None. Columns: row_id, bce, truth (true classes), top_predictions (`top` best,
    with scores), true_score (mean score of the true classes), audio (`AudioClip`) and
    spectrogram (`Picture`, default `birdtpu.plots.spectrogram_rgb`); None where a clip's audio
    is not at hand.
    """
    y, p, classes = align_tables(truth, oof, ("truth", "oof"))
    ids = truth["row_id"].astype(str).to_numpy()
    q = np.clip(p, 1e-7, 1 - 1e-7)
    bce = -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(axis=1)
    true_score = np.where(y.sum(1) > 0, (p * y).sum(1) / np.maximum(y.sum(1), 1), np.nan)
    rows = []
    for i in np.argsort(-bce, kind="stable")[:k]:
        found = (
            audio.get(ids[i]) if isinstance(audio, Mapping) else audio(ids[i]) if audio else None
        )
        best = np.argsort(-p[i], kind="stable")[:top]
        truth_names = [classes[j] for j in np.flatnonzero(y[i])]
        clip = image = None
        if found is not None:
            wave, rate = found
            clip = AudioClip(np.asarray(wave, np.float32), int(rate), ids[i])
            image = Picture((spectrogram or spectrogram_rgb)(wave, rate), ids[i])
        rows.append(
            {
                "row_id": ids[i],
                "bce": float(bce[i]),
                "truth": " ".join(truth_names),
                "top_predictions": ", ".join(f"{classes[j]} {p[i, j]:.3f}" for j in best),
                "true_score": float(true_score[i]),
                "audio": clip,
                "spectrogram": image,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["row_id", "bce", "truth", "top_predictions", "true_score", "audio", "spectrogram"],
    )


def shard_audio(paths: list[str], ids, compression: str = "") -> dict[str, tuple[np.ndarray, int]]:
    """{id: (wave, sample_rate)} of the records of shard `paths` whose id is in `ids` (the audio
    the model scored, e.g. the validation fold's shards)."""
    wanted = set(map(str, ids))
    spec = {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "id": tf.io.FixedLenFeature([], tf.string),
        "sample_rate": tf.io.FixedLenFeature([], tf.int64),
    }
    found = {}
    for record in tf.data.TFRecordDataset(list(paths), compression or None):
        ex = tf.io.parse_single_example(record, spec)
        clip_id = ex["id"].numpy().decode()
        if clip_id in wanted and clip_id not in found:
            wave = np.frombuffer(ex["audio"].numpy(), "<i2").astype(np.float32) / 32767.0
            found[clip_id] = (wave, int(ex["sample_rate"]))
            if len(found) == len(wanted):
                break
    return found
