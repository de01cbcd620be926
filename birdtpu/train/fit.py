"""`birdtpu fit`: one fold of one recipe, from shards to a saved model with its scores.

Outputs in the run folder: config.yaml (resolved), model.keras (best on validation) with
model.json (classes, sample rate, clip length), history.csv, oof_fold<k>.csv (validation
predictions with clip ids) and metrics.json. A `backup/` folder lets a preempted run resume at
the same epoch; it is removed when the run ends.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from birdtpu import io
from birdtpu.config import join, save_config
from birdtpu.data.prepare import ensure_shards
from birdtpu.data.shards import shard_paths
from birdtpu.errors import DataError


def _loss(cfg):
    import keras

    if cfg.train.loss == "bce":
        return keras.losses.BinaryCrossentropy(label_smoothing=cfg.train.label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing)


def _optimizer(cfg, steps_per_epoch: int):
    """Adam or AdamW with a linear warm-up then cosine decay, per step."""
    import keras

    total = max(1, cfg.train.epochs * steps_per_epoch)
    warmup = min(cfg.train.warmup_epochs * steps_per_epoch, total - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=cfg.train.lr * 0.01 if warmup else cfg.train.lr, decay_steps=total - warmup,
        alpha=0.01, warmup_target=cfg.train.lr if warmup else None, warmup_steps=warmup)
    if cfg.train.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=cfg.train.weight_decay)
    return keras.optimizers.Adam(schedule)


def _datasets(cfg, manifest: dict, global_batch: int):
    from birdtpu.data.pipeline import build_dataset

    classes = manifest["classes"]
    samples = int(round(cfg.frontend.clip_seconds * cfg.data.sample_rate))
    train_paths = shard_paths(cfg.shard_dir, manifest, exclude=[cfg.data.fold])
    val_paths = shard_paths(cfg.shard_dir, manifest, folds=[cfg.data.fold])
    if not train_paths or not val_paths:
        raise DataError(f"{cfg.shard_dir}: fold {cfg.data.fold} leaves no training or no validation shards")
    common = dict(num_classes=len(classes), clip_samples=samples, compression=cfg.shards.compression,
                  seed=cfg.runtime.seed, deterministic=cfg.runtime.deterministic)
    train = build_dataset(train_paths, batch_size=global_batch, training=True, augment=cfg.augment,
                          shuffle_buffer=cfg.train.shuffle_buffer, **common)
    val = build_dataset(val_paths, batch_size=global_batch, training=False, with_ids=True, **common)
    n_train = sum(e["examples"] for e in manifest["shards"] if e["fold"] != cfg.data.fold)
    return train, val, n_train


def _callbacks(cfg, run_dir: str, monitor: str):
    import keras

    return [
        keras.callbacks.BackupAndRestore(join(run_dir, "backup"), save_freq="epoch", delete_checkpoint=True),
        keras.callbacks.ModelCheckpoint(join(run_dir, "model.keras"), monitor=monitor, mode="max",
                                        save_best_only=True),
        keras.callbacks.CSVLogger(join(run_dir, "history.csv"), append=True),
    ]


def predict_with_ids(model, dataset) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(targets, predictions, ids) over a finite dataset of (wave, target, id) batches."""
    truth, preds, ids = [], [], []
    for wave, target, clip_id in dataset:
        preds.append(np.asarray(model(wave, training=False), np.float64))
        truth.append(target.numpy())
        ids.extend(x.decode() for x in clip_id.numpy())
    return np.concatenate(truth), np.concatenate(preds), ids


def fit(cfg, log=print) -> dict:
    """Train fold `data.fold` of `cfg`; returns the validation scores."""
    import keras

    from birdtpu import runtime
    from birdtpu.metrics import macro_roc_auc
    from birdtpu.models.registry import build_model

    run = runtime.setup(cfg.runtime)
    log(f"fit: device {run.device}, {run.replicas} replica(s), precision {run.precision}")
    run_dir = cfg.run_dir
    io.makedirs(run_dir)
    save_config(cfg, join(run_dir, "config.yaml"))
    manifest = ensure_shards(cfg, log)
    classes = manifest["classes"]
    global_batch = cfg.train.batch_size * run.replicas
    train_ds, val_ds, n_train = _datasets(cfg, manifest, global_batch)
    steps = cfg.train.steps_per_epoch or max(1, math.ceil(n_train / global_batch))
    jit = run.jit_default if cfg.train.jit_compile == "auto" else cfg.train.jit_compile == "true"
    with run.strategy.scope():
        model = build_model(cfg, len(classes))
        model.compile(optimizer=_optimizer(cfg, steps), loss=_loss(cfg), jit_compile=jit,
                      steps_per_execution=cfg.train.steps_per_execution,
                      metrics=[keras.metrics.AUC(multi_label=True, num_labels=len(classes), name="auc")])
    log(f"fit: {len(classes)} classes, {n_train} training clips, {steps} steps/epoch of {global_batch}, "
        f"{cfg.train.epochs} epochs, model {cfg.model.name} ({model.count_params():,} parameters)")
    started = time.time()
    model.fit(train_ds, epochs=cfg.train.epochs, steps_per_epoch=steps,
              validation_data=val_ds.map(lambda w, t, _: (w, t)),
              callbacks=_callbacks(cfg, run_dir, "val_auc"), verbose=2)
    best = keras.models.load_model(join(run_dir, "model.keras"), compile=False, safe_mode=True)
    truth, preds, ids = predict_with_ids(best, val_ds)
    oof = pd.DataFrame(preds, columns=classes)
    oof.insert(0, "row_id", ids)
    io.atomic_write_text(join(run_dir, f"oof_fold{cfg.data.fold}.csv"), oof.to_csv(index=False))
    scores = {"fold": cfg.data.fold, "val_clips": len(ids), "macro_roc_auc": macro_roc_auc(truth > 0, preds),
              "top1_accuracy": float(np.mean(preds.argmax(1) == truth.argmax(1))),
              "train_minutes": round((time.time() - started) / 60, 2)}
    io.write_json(join(run_dir, "metrics.json"), scores)
    io.write_json(join(run_dir, "model.json"), {"classes": classes, "sample_rate": cfg.data.sample_rate,
                                                 "clip_seconds": cfg.frontend.clip_seconds})
    log(f"fit: validation fold {cfg.data.fold}: macro ROC-AUC {scores['macro_roc_auc']:.4f}, "
        f"top-1 {scores['top1_accuracy']:.3f} on {len(ids)} clips -> {run_dir}")
    return scores
