"""The `embedding_head` model: a linear or small MLP classifier on a teacher's frozen embeddings.

`birdtpu fit` with `model.name: embedding_head` trains it on the catalog's embeddings
(`birdtpu embed`, run first where the set is missing): every window of a recording carries the
recording's target; windows of fold `data.fold` validate, the others train (fold -1: always
train). The model is Dropout(model.dropout) -> [Dense(model.neck, ReLU) -> Dropout] ->
Dense(classes, model.activation), compiled as every recipe is (`train.fit.compile_model`: the
recipe's loss, optimizer, schedule and AUC metrics), trained `train.epochs` passes of
`train.batch_size`, the best epoch on `train.monitor` kept. The run folder gets what `fit`
writes: config.yaml, model.keras, model.json (classes, the teacher's sample rate, the window as
clip_seconds, and the teacher: spec, sha256), history.csv, oof_fold<k>.csv, truth_fold<k>.csv
(one row per window) and metrics.json (window scores, and `recording_*` scores of each
recording's windows' max).

`birdtpu fit --folds` trains each fold in `fold<k>/` and pools their out-of-fold windows
(`train.cv.fit_folds`). `HeadRunner` predicts waveform windows with such a run or its export
(`head_export.py`): the teacher embeds each window on the fly (the same windows and pooling as
`embed`), then the head scores it; `infer.runners.open_model` returns it for a sidecar that names
a teacher.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd

from birdtpu import fs, saving
from birdtpu.config import save_config
from birdtpu.errors import ConfigError, DataError
from birdtpu.fs import join
from birdtpu.infer.files import model_format, read_meta
from birdtpu.infer.runner import Runner
from birdtpu.teachers import load_teacher
from birdtpu.teachers.embed import embed_dir, read_embeddings, read_manifest, window_embeddings
from birdtpu.teachers.head_runtime import head_function

NAME = "embedding_head"
MONITORS = {"val_auc": "max", "val_pr_auc": "max", "val_loss": "min"}


def catalog_embeddings(cfg, log=print) -> tuple[str, dict]:
    """(folder, manifest) of the catalog's embeddings for `cfg`, written first where missing."""
    cfg = dataclasses.replace(cfg, embed=dataclasses.replace(cfg.embed, source="catalog"))
    folder = embed_dir(cfg)
    if not fs.exists(join(folder, "manifest.json")):
        from birdtpu.teachers.embed import write_embeddings

        log(f"fit: no embeddings in {folder}: embedding the catalog first")
        write_embeddings(cfg, log)
    manifest = read_manifest(folder)
    if not manifest["classes"]:
        raise DataError(f"{folder}: embeddings without targets (soundscapes); embed the catalog")
    return folder, manifest


def build_head(cfg, dim: int, num_classes: int):
    """The head: Dropout -> [Dense(neck, ReLU) -> Dropout] -> Dense(classes, activation)."""
    import keras

    m = cfg.model
    x = inputs = keras.Input((dim,), name="embedding")
    x = keras.layers.Dropout(m.dropout)(x)
    if m.neck:
        x = keras.layers.Dense(m.neck, activation="relu", name="neck")(x)
        x = keras.layers.Dropout(m.dropout)(x)
    out = keras.layers.Dense(num_classes, activation=m.activation, name="classifier")(x)
    return keras.Model(inputs, out, name=NAME)


def _recording_scores(rec: list[str], y: np.ndarray, p: np.ndarray) -> dict:
    """Macro ROC-AUC and top-1 of each recording's max over its windows."""
    from birdtpu.metrics import macro_roc_auc
    from birdtpu.metrics.scores import top_k_accuracy

    frame = pd.DataFrame(p).groupby(np.asarray(rec), sort=True).max()
    truth = pd.DataFrame(y).groupby(np.asarray(rec), sort=True).max()
    yr, pr = (truth.to_numpy() > 0).astype(np.int8), frame.to_numpy()
    return {
        "recording_val_clips": len(frame),
        "recording_macro_roc_auc": macro_roc_auc(yr, pr),
        "recording_top1_accuracy": top_k_accuracy(yr, pr, 1),
    }


def fit_head(cfg, log=print, overwrite: bool = False) -> dict:
    """Train fold `data.fold` of an embedding_head recipe (see the module docstring); returns the
    validation scores. A finished run returns its scores unless `overwrite`."""
    import keras

    from birdtpu import runtime
    from birdtpu.metrics import macro_roc_auc
    from birdtpu.train.finished import finished_scores
    from birdtpu.train.fit import compile_model, oof_tables
    from birdtpu.train.validation_report import fold_warnings, recall_text, report

    done = finished_scores(cfg, overwrite, log)
    if done is not None:
        return done
    monitor = cfg.train.monitor
    if monitor not in MONITORS:
        raise ConfigError(
            f"train.monitor: {monitor} is not available to {NAME} ({', '.join(MONITORS)})"
        )
    folder, manifest = catalog_embeddings(cfg, log)
    data = read_embeddings(folder, manifest)
    classes, fold = manifest["classes"], cfg.data.fold
    val = data["fold"] == fold
    if not val.any() or val.all():
        raise DataError(
            f"{folder}: fold {fold} has {int(val.sum())} of {len(val)} windows; "
            "need windows both to train and to validate"
        )
    x, y = data["embedding"], data["target"]
    run_dir = cfg.run_dir
    fs.makedirs(run_dir)
    save_config(cfg, join(run_dir, "config.yaml"))
    runtime.set_seed(cfg.runtime.seed, cfg.runtime.deterministic)
    batch = cfg.train.batch_size
    steps = max(1, math.ceil(int((~val).sum()) / batch))
    model = build_head(cfg, manifest["dim"], len(classes))
    compile_model(model, cfg, steps, batch, False, len(classes), log)
    best_path = join(run_dir, "model.keras")
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            best_path, monitor=monitor, mode=MONITORS[monitor], save_best_only=True
        ),
        keras.callbacks.CSVLogger(join(run_dir, "history.csv")),
    ]
    log(
        f"fit: {NAME} on {manifest['teacher']['name']} embeddings ({manifest['dim']}), "
        f"{len(classes)} classes, {int((~val).sum())} training and {int(val.sum())} validation "
        f"windows, {cfg.train.epochs} epochs of {steps} steps ({model.count_params():,} parameters)"
    )
    started = time.time()
    history = model.fit(
        x[~val],
        y[~val],
        batch_size=batch,
        epochs=cfg.train.epochs,
        validation_data=(x[val], y[val]),
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    if not fs.exists(best_path):
        log(f"fit: {monitor} never improved (NaN?): saving the last model as model.keras")
        model.save(best_path)
    best = saving.load_model(best_path)
    preds = np.asarray(best.predict(x[val], batch_size=256, verbose=0), np.float32)
    ids = [i for i, v in zip(data["id"], val) if v]
    oof, true = oof_tables(y[val], preds, ids, classes, log)
    fs.atomic_write_text(join(run_dir, f"oof_fold{fold}.csv"), oof.to_csv(index=False))
    fs.atomic_write_text(join(run_dir, f"truth_fold{fold}.csv"), true.to_csv(index=False))
    yv = (y[val] > 0).astype(np.int8)
    curve = history.history.get(monitor, [float("nan")])
    pick = np.nanargmax if MONITORS[monitor] == "max" else np.nanargmin
    best_epoch = int(pick(curve)) if np.isfinite(curve).any() else None
    rep = report(yv, preds, classes)
    scores = {
        "fold": fold,
        "val_clips": int(val.sum()),
        "macro_roc_auc": macro_roc_auc(yv, preds),
        "top1_accuracy": rep["top1_accuracy"],
        "macro_recall": rep["macro_recall"],
        **_recording_scores([r for r, v in zip(data["recording"], val) if v], y[val], preds),
        "monitor": monitor,
        "best": None if best_epoch is None else float(curve[best_epoch]),
        "best_epoch": best_epoch,
        "train_minutes": round((time.time() - started) / 60, 2),
    }
    fs.write_json(join(run_dir, "metrics.json"), {**scores, **rep})
    teacher = manifest["teacher"]
    fs.write_json(
        join(run_dir, "model.json"),
        {
            "classes": classes,
            "sample_rate": teacher["sample_rate"],
            "clip_seconds": manifest["window_seconds"],
            "teacher": {k: teacher[k] for k in ("name", "spec", "model_sha256", "dim")},
            "embed_batch_size": manifest["batch_size"],
            "embeddings": folder,
        },
    )
    for line in fold_warnings(yv, preds, classes, cfg.train.min_val_clips):
        log(f"fit: warning: {line}")
    log(
        f"fit: validation fold {fold}: macro ROC-AUC {scores['macro_roc_auc']:.4f}, top-1 "
        f"{scores['top1_accuracy']:.3f}, {recall_text(rep)} on {len(oof)} windows; recordings: "
        f"macro ROC-AUC {scores['recording_macro_roc_auc']:.4f}, top-1 "
        f"{scores['recording_top1_accuracy']:.3f} -> {run_dir}"
    )
    return scores


class HeadRunner(Runner):
    """An embedding_head run's model.keras, or its export (`head_export.py`: SavedModel, TFLite,
    ONNX): waveform windows at the teacher's rate -> the teacher's embeddings -> the head's
    probabilities. `format` is the head file's."""

    def __init__(self, path: str, batch_size: int = 64, threads: int = 0):
        meta = read_meta(path)
        spec = meta["teacher"]
        self.teacher = load_teacher(spec["spec"], threads)
        if self.teacher.sha256() != spec["model_sha256"]:
            raise ConfigError(
                f"{path}: trained on the embeddings of {spec['spec']} with sha256 "
                f"{spec['model_sha256'][:12]}..., but that model file is now another one"
            )
        self.format = model_format(path)
        self.head = head_function(path, threads)
        self.embed_batch = int(meta.get("embed_batch_size", 16))
        super().__init__(path, meta, round(meta["clip_seconds"] * meta["sample_rate"]), batch_size)

    def _run(self, batch):
        emb, _ = window_embeddings(self.teacher, batch, self.embed_batch)
        return self.head(np.ascontiguousarray(emb, np.float32))
