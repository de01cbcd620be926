"""Distillation from a teacher's predictions CSV: soft targets blended into the training targets.

`train.teacher_predictions` lists prediction CSVs (`row_id` = the clip id in the shards, the
catalog's `filename`, and one column per class: another birdtpu run's `oof_fold<k>.csv`, or an
external model's outputs written the same way). Each training clip's target becomes

    alpha * y + (1 - alpha) * soft_targets(q, T)      (alpha = train.distill_alpha, T = train.distill_temperature)

with q the teacher's probabilities of the clip's recording, softened per class (sigmoid(logit(q) / T),
`birdtpu.train.distill.soft_targets`); a class the teacher leaves empty keeps its label
(`birdtpu embed --predictions` writes such tables from BirdNET or Perch logits). The binary
losses are linear in the target, so with `train.loss: bce` this is
alpha * BCE(y, p) + (1 - alpha) * BCE(soft, p) on every clip. Validation keeps the hard targets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from birdtpu.errors import DataError
from birdtpu.metrics.tables import ROW_ID, read_table


def read_teacher(paths: list[str], classes: list[str]) -> pd.DataFrame:
    """The teacher's probabilities, `row_id` + the run's classes in order, from `paths`; an empty
    cell (NaN) is a class the teacher does not know. DataError naming the file for a missing
    class, text, a duplicate id, or a value outside [0, 1]."""
    frames = []
    for path in paths:
        df = read_table(path)
        missing = [c for c in classes if c not in df.columns]
        if missing:
            raise DataError(
                f"{path}: teacher predictions lack class {missing[0]!r} ({len(missing)} of "
                f"{len(classes)} classes missing)"
            )
        values = df[classes].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        text = np.isnan(values) & df[classes].notna().to_numpy()
        if text.any():
            r, c = np.argwhere(text)[0]
            raise DataError(
                f"{path}: row {df[ROW_ID].iloc[r]!r}, column {classes[c]!r}: "
                f"{df[classes[c]].iloc[r]!r} is not a number"
            )
        df = df.assign(**dict(zip(classes, values.T)))
        if ((values < 0) | (values > 1)).any():
            r, c = np.argwhere((values < 0) | (values > 1))[0]
            raise DataError(
                f"{path}: row {df[ROW_ID].iloc[r]!r}, column {classes[c]!r}: {values[r, c]} is not "
                "a probability in [0, 1]"
            )
        frames.append(df[[ROW_ID, *classes]])
    table = pd.concat(frames, ignore_index=True)
    dup = table[ROW_ID].duplicated()
    if dup.any():
        raise DataError(
            f"train.teacher_predictions: row_id {table[ROW_ID][dup].iloc[0]!r} appears in more "
            "than one row"
        )
    return table


def teacher_targets(cfg, classes: list[str], train_ids: list[str], log=print):
    """(ids, soft targets (ids, classes) float32, alpha) for the pipeline, or None without
    `train.teacher_predictions`. Every training clip id must have a teacher row (DataError with
    the count and the first missing one)."""
    from birdtpu.train.distill import soft_targets

    t = cfg.train
    if not t.teacher_predictions:
        return None
    table = read_teacher(t.teacher_predictions, classes)
    missing = sorted(set(train_ids) - set(table[ROW_ID]))
    if missing:
        raise DataError(
            f"train.teacher_predictions: no teacher row for {len(missing)} of {len(set(train_ids))} "
            f"training clips (first: {missing[0]!r})"
        )
    probs = table[classes].to_numpy(np.float32)
    soft = np.array(soft_targets(probs, t.distill_temperature, from_logits=False), np.float32)
    soft[np.isnan(probs)] = np.nan  # classes the teacher does not know keep their labels
    log(
        f"fit: distilling from {len(table)} teacher predictions ({len(t.teacher_predictions)} "
        f"file(s)): targets {t.distill_alpha} x labels + {1 - t.distill_alpha:g} x teacher at "
        f"temperature {t.distill_temperature}"
    )
    return table[ROW_ID].astype(str).tolist(), soft, float(t.distill_alpha)
