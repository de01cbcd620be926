"""`birdtpu fit`: one fold of one recipe, from shards to a saved model with its scores.

Outputs in the run folder: config.yaml (resolved), model.keras (best on `train.monitor`) with
model.json (classes, sample rate, clip length; `clip_trim_db` for a model with the Freesound 2019
clip inputs, which predict computes over each recording trimmed so), history.csv and history.png, oof_fold<k>.csv
(validation predictions: row_id + one column per class) with truth_fold<k>.csv (0/1 targets of
the same rows) and metrics.json. A `backup/` folder lets a preempted run resume at the epoch and
step of its last backup (birdtpu.train.callbacks); it is removed when the run ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import tempfile
import time

import numpy as np
import pandas as pd

from birdtpu import fs, saving
from birdtpu.config import save_config
from birdtpu.data import shardcache
from birdtpu.data.prepare import ensure_shards
from birdtpu.data.shards import shard_paths
from birdtpu.errors import DataError
from birdtpu.fs import join
from birdtpu.tracking import Tracker, shard_audio, worst_clips_table
from birdtpu.train.batch_predict import predict_padded
from birdtpu.train.datasets import run_datasets
from birdtpu.train.finished import finished_scores
from birdtpu.train.placement import augment_in_model, model_augment, pipeline_augment

WORST_CLIPS = 16  # validation clips with audio in the W&B table


def predict_with_ids(model, dataset, replicas: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(targets, predictions, ids) over a finite dataset of (wave, target, id) batches (wave: a
    tensor or a dict of inputs), through Keras' compiled predict step (`predict_padded`: a last
    batch padded for `replicas`)."""
    truth, preds, ids = [], [], []
    for wave, target, clip_id, *_ in dataset:  # a target mask may follow the ids
        inputs = {k: v.numpy() for k, v in wave.items()} if isinstance(wave, dict) else wave.numpy()
        preds.append(predict_padded(model, inputs, replicas))
        truth.append(target.numpy())
        ids.extend(x.decode() for x in clip_id.numpy())
    return np.concatenate(truth), np.concatenate(preds), ids


def oof_tables(
    truth: np.ndarray, preds: np.ndarray, ids: list[str], classes: list[str], log=print
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions, truth) as `row_id` + one column per class, one row per recording; truth is 1
    where the target is above 0. The rows of one id (a recording's boxes or windows: Rainforest's
    tp and fp boxes) combine into one, the maximum over them, as the competitions score a
    recording, with a log line."""
    pred = pd.DataFrame(preds, columns=classes)
    pred.insert(0, "row_id", ids)
    true = pd.DataFrame((truth > 0).astype(np.int8), columns=classes)
    true.insert(0, "row_id", ids)
    repeats = int(pred["row_id"].duplicated().sum())
    if repeats:
        log(
            f"fit: {len(ids)} validation rows are {len(ids) - repeats} recordings (boxes or windows "
            "of one recording): scored per recording, the maximum over its rows"
        )
        pred, true = (t.groupby("row_id", sort=False).max().reset_index() for t in (pred, true))
    return pred, true


def compile_model(
    model, cfg, steps: int, global_batch: int, jit: bool, num_classes: int, log=print
):
    """Compile `model` for training: loss, optimizer with its schedule, ROC and PR AUC metrics."""
    import keras

    from birdtpu.train.losses import make_loss, make_optimizer
    from birdtpu.train.schedules import make_schedule

    schedule = make_schedule(cfg.train, steps, global_batch, log)
    per_execution = cfg.train.steps_per_execution
    if per_execution > steps:  # Keras would run whole executions past the epoch (and the schedule)
        log(
            f"fit: train.steps_per_execution {per_execution} is more than the {steps} steps of an "
            f"epoch: {steps} used"
        )
        per_execution = steps
    model.compile(
        optimizer=make_optimizer(cfg.train, schedule),
        loss=make_loss(cfg.train),
        jit_compile=jit,
        steps_per_execution=per_execution,
        metrics=[
            keras.metrics.AUC(multi_label=True, num_labels=num_classes, name="auc"),
            keras.metrics.AUC(curve="PR", multi_label=True, num_labels=num_classes, name="pr_auc"),
        ],
    )
    return schedule


@contextlib.contextmanager
def _corrupt_shards(cfg):
    """A record that fails its checksum while training (a shard changed after it was checked by
    size) becomes one line naming the fix instead of a traceback."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.DataLossError as err:
        raise DataError(
            f"{cfg.shard_dir}: a shard is corrupt ({str(err).strip().splitlines()[0]}); run "
            "`birdtpu shard --verify` to find and rewrite it"
        ) from None


def _train(model, cfg, train_ds, val, steps: int, start: tuple[int, int], callbacks: list) -> None:
    """model.fit from (epoch, step): the rest of an interrupted epoch first, then whole epochs.
    `val`: a dataset of known length, or (distributed dataset, steps)."""
    val, val_steps = val if isinstance(val, tuple) else (val, None)
    epoch, step = start
    if step:
        model.fit(
            train_ds,
            initial_epoch=epoch,
            epochs=epoch + 1,
            steps_per_epoch=steps - step,
            validation_data=val,
            validation_steps=val_steps,
            callbacks=callbacks,
            verbose=2,
        )
        epoch += 1
        if model.stop_training:
            return
    if epoch < cfg.train.epochs:
        model.fit(
            train_ds,
            initial_epoch=epoch,
            epochs=cfg.train.epochs,
            steps_per_epoch=steps,
            validation_data=val,
            validation_steps=val_steps,
            callbacks=callbacks,
            verbose=2,
        )


def fit(cfg, log=print, overwrite: bool = False) -> dict:
    """Train fold `data.fold` of `cfg`; returns the validation scores (macro_roc_auc, ...). A
    finished run returns its scores unless `overwrite` (`birdtpu.train.finished`).

    With a TF_CONFIG of several workers (runtime.setup: MultiWorkerMirroredStrategy) every worker
    runs this; the chief builds the shards and writes the run folder, the others write to a
    temporary folder that is removed at the end.
    """
    from birdtpu import runtime

    run = runtime.setup(cfg.runtime)
    log(
        f"fit: {run.backend} backend, {run.distribution}"
        + (f" ({'chief' if run.chief else 'not chief'})" if run.workers > 1 else "")
        + f", precision {run.precision}"
    )
    # only the chief removes the outputs of a run to overwrite; the others retrain with it
    done = finished_scores(cfg, overwrite, log) if run.chief or not overwrite else None
    if done is not None:
        return done
    manifest = ensure_shards(cfg, log) if run.chief else None
    if run.chief:
        shardcache.add_user(cfg.shard_dir, cfg.run_dir)
    runtime.barrier(run)  # the other workers wait for the chief's shards
    if not run.chief:
        scratch = tempfile.mkdtemp(prefix="birdtpu-worker-")
        try:
            return _fit(
                _scratch_config(cfg, scratch),
                run,
                ensure_shards(cfg, log),
                log,
                resume_dir=join(cfg.run_dir, "backup"),
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _fit(cfg, run, manifest, log)


def _scratch_config(cfg, scratch: str):
    """A non-chief worker's config: the run's shards, its outputs under `scratch`, no W&B.

    Every worker runs the same callbacks (a save reads variables, which can be a collective op),
    but only the chief's files are kept (Keras' multi-worker guidance)."""
    return dataclasses.replace(
        cfg,
        output_dir=scratch,
        shards=dataclasses.replace(cfg.shards, dir=cfg.shard_dir),
        tracking=dataclasses.replace(cfg.tracking, wandb="disabled"),
    )


def _distiller(model, cfg, train_ds):
    """`model` wrapped for embedding distillation (`train.teacher_embeddings`), its projection as
    wide as the training batches' teacher embeddings."""
    from birdtpu.train.projection import EmbeddingDistiller

    dim = train_ds.element_spec[0]["teacher_embedding"].shape[-1]
    return EmbeddingDistiller(model, cfg.train.embedding_layer, dim, cfg.train.embedding_weight)


def _fit(cfg, run, manifest: dict, log, resume_dir: str | None = None) -> dict:
    """`fit` once the runtime is set up and the shards are there; `resume_dir`: the backup to
    resume from where it is not the run's own (a non-chief worker resumes from the chief's)."""
    import keras

    from birdtpu import runtime
    from birdtpu.metrics import macro_roc_auc
    from birdtpu.models.registry import build_model
    from birdtpu.train import callbacks as cb
    from birdtpu.train.finetune import init_from
    from birdtpu.train.mixstep import BatchMix, mix_in_train_step
    from birdtpu.train.schedules import peak_lr
    from birdtpu.train.soundscape_val import make_callback as soundscape_callback
    from birdtpu.train.validation_report import fold_warnings, recall_text, report

    run_dir = cfg.run_dir
    fs.makedirs(run_dir)
    save_config(cfg, join(run_dir, "config.yaml"))
    classes = manifest["classes"]
    global_batch = cfg.train.batch_size * run.replicas
    in_model = augment_in_model(cfg.augment, run.device)
    train_ds, val_ds, keras_val, n_train = run_datasets(
        cfg, manifest, global_batch, run, log, pipeline_augment(cfg.augment, in_model)
    )
    steps = cfg.train.steps_per_epoch or max(1, math.ceil(n_train / global_batch))
    jit = run.jit_default if cfg.train.jit_compile == "auto" else cfg.train.jit_compile == "true"
    if run.backend == "jax" and not jit:
        log(
            "fit: train.jit_compile false is ignored under JAX (an uncompiled JAX step is far slower)"
        )
        jit = True
    tracker = Tracker(cfg, run_dir, log)
    runtime.set_seed(cfg.runtime.seed)  # initial weights from the seed alone, whatever ran before
    with run.strategy.scope():
        model = build_model(cfg, len(classes), model_augment(cfg.augment) if in_model else None)
        if cfg.train.teacher_embeddings:  # model.keras keeps the student (callbacks.student_of)
            model = _distiller(model, cfg, train_ds)
        compile_model(model, cfg, steps, global_batch, jit, len(classes), log)
        if in_model:
            mix_in_train_step(model, BatchMix(cfg.augment, cfg.runtime.seed))
        callbacks = cb.make_callbacks(cfg, run_dir, steps, tracker)
        callbacks["soundscape"] = soundscape_callback(cfg, classes, run.replicas, log)
        state = callbacks["backup"].restore(model, resume_dir)
        if state:
            log(
                f"fit: resuming from backup at epoch {state['epoch']}, step {state['step']} "
                f"(global step {state['global_step']})"
            )
        elif cfg.model.init_from:
            init_from(cb.student_of(model), cfg.model.init_from, log)
    start = (state["epoch"], state["step"]) if state else (0, 0)
    log(
        f"fit: {len(classes)} classes, {n_train} training clips, {steps} steps/epoch of {global_batch}, "
        f"{cfg.train.epochs} epochs, peak lr {peak_lr(cfg.train, global_batch):.3g} ({cfg.train.schedule}), "
        f"model {cfg.model.name} ({cb.student_of(model).count_params():,} parameters), XLA {jit}, waveform "
        f"noise and gain {'in the model' if in_model else 'in tf.data'}, MixUp/CutMix "
        f"{'in the train step' if in_model else 'in tf.data'}"
    )
    started = time.time()
    with _corrupt_shards(cfg):
        _train(model, cfg, train_ds, keras_val, steps, start, cb.ordered(callbacks))
    best_path = join(run_dir, "model.keras")
    if not fs.exists(best_path):
        log(f"fit: {cfg.train.monitor} never improved (NaN?): saving the last model as model.keras")
        cb.save_model_atomic(cb.student_of(model), best_path)
    best = saving.load_model(best_path)
    with _corrupt_shards(cfg):
        truth, preds, ids = predict_with_ids(best, val_ds, run.replicas)
    oof, true = oof_tables(truth, preds, ids, classes, log)
    fs.atomic_write_text(join(run_dir, f"oof_fold{cfg.data.fold}.csv"), oof.to_csv(index=False))
    fs.atomic_write_text(join(run_dir, f"truth_fold{cfg.data.fold}.csv"), true.to_csv(index=False))
    y, p = true[classes].to_numpy(), oof[classes].to_numpy()
    early, val = callbacks["early"], report(y, p, classes)
    scores = {
        "fold": cfg.data.fold,
        "val_clips": len(oof),
        "macro_roc_auc": macro_roc_auc(y, p),
        "top1_accuracy": val["top1_accuracy"],
        "macro_recall": val["macro_recall"],
        "monitor": cfg.train.monitor,
        "best": callbacks["best"].best,
        "best_epoch": callbacks["best"].best_epoch,
        "steps_trained": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "stopped_early_at": early.stopped_epoch if early else None,
        "resumed_from": {"epoch": start[0], "step": start[1]} if state else None,
        "train_minutes": round((time.time() - started) / 60, 2),
    }
    fs.write_json(join(run_dir, "metrics.json"), {**scores, **val})
    fs.write_json(
        join(run_dir, "model.json"),
        {
            "classes": classes,
            "sample_rate": cfg.data.sample_rate,
            "clip_seconds": cfg.frontend.clip_seconds,
            **({"clip_trim_db": cfg.augment.trim_db} if cfg.model.global_features else {}),
        },
    )
    tracker.log_image("history", join(run_dir, "history.png"))
    if (
        tracker.uses_wandb
    ):  # the worst validation clips with their audio (reads the validation shards once)
        ids = worst_clips_table(oof, true, None, WORST_CLIPS)["row_id"]
        val_paths = shard_paths(cfg.shard_dir, manifest, folds=[cfg.data.fold])
        tracker.log_worst_clips(
            oof, true, shard_audio(val_paths, ids, cfg.shards.compression), WORST_CLIPS
        )
    tracker.finish(scores, best_path)
    callbacks["backup"].clear()
    for line in fold_warnings(y, p, classes, cfg.train.min_val_clips):
        log(f"fit: warning: {line}")
    log(
        f"fit: validation fold {cfg.data.fold}: macro ROC-AUC {scores['macro_roc_auc']:.4f}, "
        f"top-1 {scores['top1_accuracy']:.3f}, {recall_text(val)} on {len(oof)} clips -> {run_dir}"
    )
    return scores
