"""Ensembles of models' predictions: the Freesound 2019 stacking network and simpler blends.

Predictions of M models over N rows and C classes are stacked as `x` of shape (N, C, M).

- `mean_blend`, `rank_mean_blend`: no fitting.
- `fit_class_weights` + `weighted_blend`: per class, the simplex weights over models with the best
  ROC-AUC on the training rows (a grid; ties go to the weights nearest uniform).
- `Stacker`: per class a learned weighting of the models and of their mean (one-hot on the mean at
  start, unit-norm weights), then a dense layer started at identity that learns label
  correlations, then `ShiftedTanh`; trained with binary cross-entropy by Nadam.

`cross_validate` scores them all out of fold on the same multilabel-stratified folds (the stacker
early-stops on an inner hold-out of each fold's training rows, never on the fold it is scored on).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from iterstrat.ml_stratifiers import (
    MultilabelStratifiedKFold,
    MultilabelStratifiedShuffleSplit,
)
from scipy.stats import rankdata

from birdtpu import fs, saving
from birdtpu.errors import DataError
from birdtpu.layers.stacker import Stacker
from birdtpu.metrics import (
    METRICS,
    ROW_ID,
    align_tables,
    check_table,
    per_class_roc_auc,
)

# --------------------------------------------------------------------------- tables


def stack_tables(
    preds: Sequence[pd.DataFrame], classes: Sequence[str], names: Sequence[str]
) -> tuple[np.ndarray, pd.Series]:
    """(x of shape (rows, classes, models), row ids) from one table per model, rows in the first
    table's order; DataError names the model, row or column that does not match."""
    for df, name in zip(preds, names):
        check_table(df, name)
        missing = [c for c in classes if c not in df.columns]
        if missing:
            raise DataError(f"{name}: class column {missing[0]!r} is missing")
    first = pd.Index(preds[0][ROW_ID])
    columns = []
    for df, name in zip(preds, names):
        table = df.set_index(ROW_ID)
        for a, b, (na, nb) in (
            (first, table.index, (names[0], name)),
            (table.index, first, (name, names[0])),
        ):
            extra = ~a.isin(b)
            if extra.any():
                raise DataError(f"{nb}: {ROW_ID} {a[extra][0]!r} of {na} is missing")
        columns.append(table.loc[first, list(classes)].to_numpy(np.float32))
    return np.stack(columns, axis=-1), pd.Series(first, name=ROW_ID)


def oof_inputs(
    truth: pd.DataFrame,
    preds: Sequence[pd.DataFrame],
    names: Sequence[str],
    truth_name: str = "truth",
) -> tuple[np.ndarray, np.ndarray, list[str], pd.Series]:
    """(y (rows, classes), x (rows, classes, models), classes, row ids) in the truth's order."""
    scores, classes = [], None
    for df, name in zip(preds, names):
        y, score, classes = align_tables(truth, df, (truth_name, name))
        scores.append(score)
    return (
        y,
        np.stack(scores, axis=-1).astype(np.float32),
        classes,
        truth[ROW_ID].reset_index(drop=True),
    )


# --------------------------------------------------------------------------- simple blends


def mean_blend(x: np.ndarray) -> np.ndarray:
    """Mean over models: (N, C, M) -> (N, C)."""
    return x.mean(axis=-1)


def rank_mean_blend(x: np.ndarray) -> np.ndarray:
    """Mean over models of each model's per-class rank among the rows, scaled to (0, 1]."""
    return (rankdata(x, axis=0) / len(x)).mean(axis=-1)


def weighted_blend(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-class weighted mean: x (N, C, M), weights (C, M) -> (N, C)."""
    return np.einsum("ncm,cm->nc", x, weights)


def simplex_grid(n_models: int, steps: int) -> np.ndarray:
    """All weight vectors over `n_models` in multiples of 1/steps that sum to one: (G, M)."""
    grid = [w for w in itertools.product(range(steps + 1), repeat=n_models) if sum(w) == steps]
    return np.array(grid, dtype=np.float64) / steps


def fit_class_weights(y: np.ndarray, x: np.ndarray, steps: int = 10) -> np.ndarray:
    """Per class, the grid weights (C, M) with the best ROC-AUC on (y, x).

    Among equal AUCs (and for a class without both positives and negatives) the weights nearest
    uniform win. Costs one per-class AUC per grid point: C(steps + M - 1, M - 1) of them.
    """
    grid = simplex_grid(x.shape[-1], steps)
    auc = np.stack([per_class_roc_auc(y, x @ w) for w in grid])  # (G, C)
    auc = np.nan_to_num(auc, nan=-1.0)
    best = auc >= auc.max(axis=0) - 1e-12
    distance = ((grid - 1.0 / x.shape[-1]) ** 2).sum(axis=1)
    return grid[np.argmin(np.where(best, distance[:, None], np.inf), axis=0)]


# --------------------------------------------------------------------------- the stacker


@dataclasses.dataclass
class StackerOptions:
    """Training settings of the stacker and of its cross-validation."""

    folds: int = 10  # outer multilabel-stratified folds
    offset: float = 1.6
    scale: float = 1.0
    learning_rate: float = 1e-2  # Nadam; 1e-3 needs hundreds of epochs to calibrate the output
    batch_size: int = 64
    max_epochs: int = 300
    patience: int = 15  # early stopping on the inner hold-out's loss
    weight_steps: int = 10  # grid resolution of the per-class weighted mean
    seed: int = 0


def multilabel_folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) row indices of `n_folds` multilabel-stratified folds."""
    if n_folds < 2 or n_folds > len(y):
        raise DataError(f"cannot split {len(y)} rows into {n_folds} folds")
    return list(
        MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(y, y)
    )


class _HoldoutLoss(keras.callbacks.Callback):
    """Adds `val_loss`, the binary cross-entropy on a hold-out, to each epoch's logs.

    For a network this small one eager call costs far less than fit's validation pass."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        super().__init__()
        self.x, self.y = x, y

    def on_epoch_end(self, epoch, logs=None):
        loss = keras.losses.binary_crossentropy(self.y, self.model(self.x, training=False))
        logs["val_loss"] = float(keras.ops.mean(loss))


def fit_stacker(
    y: np.ndarray,
    x: np.ndarray,
    class_names: Sequence[str],
    model_names: Sequence[str],
    options: StackerOptions,
    epochs: int | None = None,
) -> tuple[Stacker, int]:
    """Train a stacker; returns it and its number of epochs.

    With `epochs`, trains that many on all rows. Without, holds out 1/folds of the rows
    (multilabel-stratified), stops when their loss has not improved for `patience` epochs and
    keeps the best weights.
    """
    keras.utils.set_random_seed(options.seed)
    model = Stacker(class_names, model_names, options.offset, options.scale)
    model.compile(
        optimizer=keras.optimizers.Nadam(options.learning_rate), loss="binary_crossentropy"
    )
    if epochs is not None:
        model.fit(
            _batches(x, y, options), epochs=epochs, steps_per_epoch=_steps(y, options), verbose=0
        )
        return model, epochs
    split = MultilabelStratifiedShuffleSplit(
        n_splits=1, test_size=1.0 / options.folds, random_state=options.seed
    )
    train, val = next(split.split(y, y))
    stop = keras.callbacks.EarlyStopping(patience=options.patience, restore_best_weights=True)
    history = model.fit(
        _batches(x[train], y[train], options),
        epochs=options.max_epochs,
        steps_per_epoch=_steps(y[train], options),
        callbacks=[_HoldoutLoss(x[val], y[val]), stop],
        verbose=0,
    )
    return model, int(np.argmin(history.history["val_loss"])) + 1


def _steps(y: np.ndarray, options: StackerOptions) -> int:
    return -(-len(y) // options.batch_size)


def _batches(x: np.ndarray, y: np.ndarray, options: StackerOptions) -> tf.data.Dataset:
    """Reshuffled batches, repeated: one iterator for the whole fit (numpy input to fit costs a new
    dataset per epoch, far more than an epoch of this network)."""
    data = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y.astype(np.float32)))
    return data.shuffle(len(y), seed=options.seed).batch(options.batch_size).repeat()


def _predict(model: keras.Model, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Eager prediction in slices (no per-shape tracing): (N, C, M) -> (N, C) float64."""
    parts = [
        keras.ops.convert_to_numpy(model(x[i : i + batch], training=False))
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(parts).astype(np.float64)


def cross_validate(
    y: np.ndarray,
    x: np.ndarray,
    class_names: Sequence[str],
    model_names: Sequence[str],
    metrics: Sequence[str],
    options: StackerOptions,
    log=print,
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray], int]:
    """Out-of-fold scores of each model, the mean, the rank mean, the weighted mean and the stacker.

    Returns ({method: {metric: score}}, {method: out-of-fold predictions (N, C)}, the median of the
    stacker's best epoch counts). Scores are over all rows at once; the fitted blends are
    fitted on the other folds of each row's fold.
    """
    oof = {name: x[..., m].astype(np.float64) for m, name in enumerate(model_names)}
    oof["mean"], oof["rank_mean"] = mean_blend(x), rank_mean_blend(x)
    oof["weighted_mean"], oof["stacker"] = np.zeros(y.shape), np.zeros(y.shape)
    epochs = []
    for k, (train, test) in enumerate(multilabel_folds(y, options.folds, options.seed)):
        weights = fit_class_weights(y[train], x[train], options.weight_steps)
        oof["weighted_mean"][test] = weighted_blend(x[test], weights)
        model, best = fit_stacker(y[train], x[train], class_names, model_names, options)
        oof["stacker"][test] = _predict(model, x[test])
        epochs.append(best)
        log(f"stack: fold {k + 1}/{options.folds}: stacker best epoch {best}")
    report = {method: {m: METRICS[m](y, pred) for m in metrics} for method, pred in oof.items()}
    return report, oof, int(np.median(epochs))


# --------------------------------------------------------------------------- saved stackers


def save_stacker(model: Stacker, path: str) -> None:
    """Save as .keras through a temporary name and a rename."""
    if not path.endswith(".keras"):
        raise ValueError(f"{path}: a stacker is saved as .keras")
    tmp = fs.temp_name(path) + ".keras"
    model.save(tmp)
    fs.rename(tmp, path)


def load_stacker(path: str) -> Stacker:
    """A stacker saved by `birdtpu stack` (or `save_stacker`)."""
    if not fs.exists(path):
        raise DataError(f"{path}: stacker file not found")
    model = saving.load_model(path)
    if not isinstance(model, Stacker):
        raise DataError(
            f"{path}: not a stacker (a {type(model).__name__}); `birdtpu stack` writes stacker.keras"
        )
    return model


def apply_stacker(model: Stacker, preds: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Blend one prediction table per model (`row_id` + classes, in `model.model_names` order).

    Returns a table of `row_id` and the model's classes, rows in the first table's order.
    """
    if len(preds) != len(model.model_names):
        raise DataError(
            f"the stacker blends {len(model.model_names)} models ({', '.join(model.model_names)}), "
            f"got {len(preds)} prediction tables"
        )
    x, row_ids = stack_tables(preds, model.class_names, model.model_names)
    out = pd.DataFrame(_predict(model, x), columns=model.class_names)
    out.insert(0, ROW_ID, row_ids)
    return out
