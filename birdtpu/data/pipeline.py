"""The tf.data input builders, `build_dataset` (shards) and `build_file_dataset` (audio files):
records -> trim -> crop/pad -> (a second shard set's clips sampled in, e.g. pseudo-labels) ->
batch -> waveform augmentations, background mixing, MixUp/CutMix -> prefetch.

Records come from TFRecord shards of PCM (`build_dataset`, the fast path) or from audio files
decoded on the host as they are read (`build_file_dataset`, for quick work without shards).
Everything after decoding is core TensorFlow, so the dataset feeds a TPU through `tf.distribute`
without Python per example. Randomness is stateless: each record and each batch draws from its
own seed, taken from a `tf.data.Dataset.random(seed)` stream, so a seeded, deterministic
pipeline repeats exactly.

Targets are the shards' (multi-hot: 1 for the primary label, `data.secondary_weight` for
secondary ones); `secondary_weight=` re-weights them, 0 gives one-hot. Label smoothing is left to
the losses: in the pipeline it would add nothing and would be smoothed twice.

| module     | step                                                                     |
|------------|--------------------------------------------------------------------------|
| `crops`    | one clip: crop, pad, trim, the record's window, secondary weights        |
| `sources`  | audio files decoded on the host; background crops                       |
| `batches`  | batching and the batch-level augmentations                               |
| here       | the builders: files, workers, shuffling, caching, prefetch               |
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from birdtpu import fs
from birdtpu.data.balance import balance
from birdtpu.data.batches import augmented_batches, background_batches
from birdtpu.data.crops import AUTOTUNE, crop_policies, record_clips
from birdtpu.data.shards import parse_example, parse_header
from birdtpu.data.sources import decode_files
from birdtpu.errors import DataError


def _worker_split(input_context, num_workers: int, worker_index: int) -> tuple[int, int]:
    if input_context is not None:
        return input_context.num_input_pipelines, input_context.input_pipeline_id
    if not 0 <= worker_index < num_workers:
        raise ValueError(f"worker_index {worker_index} is not in [0, {num_workers})")
    return num_workers, worker_index


def _worker_seed(seed, index: int):
    """Input worker `index`'s seed: its own random draws (crops, MixUp), the same as `seed` for the
    first worker (and for a single process)."""
    return None if seed is None else seed + 1000003 * index


_MIX_SALT = 7919  # the mixed-in stream's seed: the worker's seed plus this


def _records(paths, workers, index, training, seed, order, compression, cycle_length, cache):
    """The serialized records of shard `paths` for worker `index` of `workers` (whole files, or
    in evaluation with fewer files than workers every workers-th record); training shuffles the
    files and repeats."""
    files = tf.data.Dataset.from_tensor_slices(list(paths))
    record_split = False
    if workers > 1:
        if len(paths) >= workers:
            files = files.shard(workers, index)
        elif training:
            raise DataError(
                f"{len(paths)} shard file(s) for {workers} input workers: each worker reads whole "
                f"files, so there must be at least {workers} (better {4 * workers}+); write smaller "
                "shards (shards.target_mb, pseudo.files_per_shard) or use fewer workers"
            )
        else:
            record_split = True
    if training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = files.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression or None),
        cycle_length=max(1, min(len(paths), cycle_length)),
        num_parallel_calls=AUTOTUNE,
        deterministic=order,
    )
    if record_split:
        ds = ds.shard(workers, index)
    if cache:
        ds = ds.cache("" if cache is True else cache)
    if training:
        ds = ds.repeat()
    return ds


def _finish(ds, sharded: bool, deterministic: bool):
    options = tf.data.Options()
    options.deterministic = deterministic
    if sharded:  # already split per worker: tf.distribute must not split it again
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(AUTOTUNE)


# ------------------------------------------------------------------ public builders


def build_dataset(
    paths: list[str],
    num_classes: int,
    clip_samples: int,
    batch_size: int,
    training: bool,
    augment=None,
    compression: str = "",
    shuffle_buffer: int = 1024,
    seed: int | None = None,
    deterministic: bool = False,
    with_ids: bool = False,
    *,
    input_context=None,
    num_workers: int = 1,
    worker_index: int = 0,
    cache: bool | str = False,
    drop_remainder: bool | None = None,
    crop: str | None = None,
    pad: str | None = None,
    trim_db: float | None = None,
    secondary_weight: float | None = None,
    background=None,
    sample_rate: int | None = None,
    cycle_length: int = 16,
    copies=None,
    mix_paths: list[str] | None = None,
    mix_ratio: float = 0.0,
    log=print,
):
    """Batches of (waveform [batch, clip_samples], target [batch, classes]) from shard `paths`.

    Training shuffles files, repeats, crops/pads/trims by the `augment` config (or `crop`/`pad`/
    `trim_db`), shuffles the clips (`shuffle_buffer`), augments and drops the last partial batch
    (`drop_remainder`, static shapes for TPU). Evaluation reads once, in order, first samples,
    keeping every clip; `with_ids` adds the clip ids as a third element.

    Multi-worker: `input_context` (a `tf.distribute.InputContext`) or `num_workers`/`worker_index`
    give each worker whole files; with fewer files than workers, training raises DataError and
    evaluation splits the records instead. `cache` keeps the records in memory (True) or in a
    file (a path) after the first pass. `background` (a folder/glob/dataset, default
    `augment.background`) feeds background mixing; audio files there need `sample_rate`.
    `deterministic` fixes the order (and, with `seed`, every random draw). `copies` (training): the
    expected copies per record of each class (`birdtpu.data.balance`), the class balance.

    `mix_paths` (training, e.g. pseudo-labelled shards) with `mix_ratio` r in (0, 1): a second
    stream of clips, read, cropped and padded as the training records (files shuffled, repeated,
    split among workers; not cached, not balanced, targets as written: no `secondary_weight`),
    sampled into the clips before the shuffle, so about r of each batch comes from it and MixUp
    mixes the two. r = 0: the dataset without it, the same bytes.
    """
    if not paths:
        raise DataError("no shard files to read")
    if not 0 <= mix_ratio < 1:
        raise ValueError(f"mix_ratio {mix_ratio} is not in [0, 1)")
    mixing = mix_ratio > 0
    if mixing and not (training and mix_paths):
        raise ValueError("mix_ratio > 0 needs mix_paths and training=True")
    workers, index = _worker_split(input_context, num_workers, worker_index)
    seed = _worker_seed(seed, index)
    order = deterministic or not training
    ds = _records(paths, workers, index, training, seed, order, compression, cycle_length, cache)
    crop, pad, trim_db = crop_policies(training, augment, crop, pad, trim_db)
    parse = parse_example if trim_db > 0 else parse_header  # trimming needs the whole recording
    ds = ds.map(lambda s: parse(s, num_classes), num_parallel_calls=AUTOTUNE, deterministic=order)
    if training and copies is not None:
        ds = balance(ds, copies, seed, order)
    clips = record_clips(
        ds, clip_samples, training, crop, pad, trim_db, secondary_weight, seed, order, with_ids
    )
    if mixing:  # the second stream: its own draws, its soft targets as they are
        mix_seed = None if seed is None else seed + _MIX_SALT
        mixed = _records(
            mix_paths, workers, index, True, mix_seed, order, compression, cycle_length, False
        )
        mixed = mixed.map(
            lambda s: parse(s, num_classes), num_parallel_calls=AUTOTUNE, deterministic=order
        )
        mixed = record_clips(
            mixed, clip_samples, True, crop, pad, trim_db, None, mix_seed, order, with_ids
        )
        clips = tf.data.Dataset.sample_from_datasets(
            [clips, mixed], weights=[1.0 - mix_ratio, mix_ratio], seed=seed
        )
    if (
        training
    ):  # shuffle clips, not records: the buffer holds clip_samples (int16 from shards) per entry
        clips = clips.shuffle(shuffle_buffer, seed=seed)
    if augment is not None and training and augment.background_prob > 0 and sample_rate is None:
        sample_rate = _first_sample_rate(paths[0], compression)
    bg = background_batches(
        augment, training, background, clip_samples, batch_size, sample_rate, seed, compression, log
    )
    drop = training if drop_remainder is None else drop_remainder
    return _finish(
        augmented_batches(clips, batch_size, training, augment, bg, seed, order, drop),
        workers > 1,
        order,
    )


def _first_sample_rate(path: str, compression: str) -> int:
    """The sample rate of the first record of a shard."""
    spec = {"sample_rate": tf.io.FixedLenFeature([], tf.int64)}
    for record in tf.data.TFRecordDataset(path, compression or None).take(1):
        return int(tf.io.parse_single_example(record, spec)["sample_rate"])
    raise DataError(f"{path}: shard has no records")


def build_file_dataset(
    paths: list[str],
    targets,
    clip_samples: int,
    batch_size: int,
    training: bool,
    sample_rate: int,
    augment=None,
    seed: int | None = None,
    deterministic: bool = False,
    with_ids: bool = False,
    *,
    ids: list[str] | None = None,
    labels=None,
    boxes=None,
    max_seconds: float | None = None,
    input_context=None,
    num_workers: int = 1,
    worker_index: int = 0,
    cache: bool | str = False,
    drop_remainder: bool | None = None,
    crop: str | None = None,
    pad: str | None = None,
    trim_db: float | None = None,
    secondary_weight: float | None = None,
    background=None,
    log=print,
):
    """Batches like `build_dataset`, from audio files (ogg, flac, wav, mp3...) decoded as they are read.

    Decoding runs on the host (soundfile + soxr through `tf.numpy_function`, in parallel), resampled
    to `sample_rate`, only the first `max_seconds` where given; unreadable files are logged once,
    counted and skipped. For quick work: shards are much faster (benchmarks/bench_pipeline.py).
    `targets`: (files, classes); `ids` default to the paths; `labels` (primary class index, default
    the argmax of `targets`) serve `secondary_weight`; `boxes` (files, 2) t_min/t_max seconds
    serve crop 'box'. `cache=True` keeps decoded audio in memory after the first pass.
    """
    if not len(paths):
        raise DataError("no audio files to read")
    targets = np.asarray(targets, np.float32)
    if targets.ndim != 2 or len(targets) != len(paths):
        raise DataError(f"targets: expected ({len(paths)}, classes), got shape {targets.shape}")
    missing = [p for p in paths if not fs.exists(p)]
    if missing:
        raise DataError(
            f"{missing[0]}: audio file not found ({len(missing)} of {len(paths)} missing)"
        )
    columns = {
        "path": list(paths),
        "target": targets,
        "id": list(ids if ids is not None else paths),
        "label": np.asarray(labels if labels is not None else targets.argmax(1), np.int64),
        "sample_rate": np.full(len(paths), sample_rate, np.int64),
    }
    if boxes is not None:  # as the shards' records: box (t_min, t_max, f_min, f_max) and has_box
        boxes = np.asarray(boxes, np.float32)
        if boxes.shape != (len(paths), 2):
            raise DataError(
                f"boxes: expected ({len(paths)}, 2) t_min/t_max, got shape {boxes.shape}"
            )
        columns.update(
            box=np.concatenate([boxes, -np.ones_like(boxes)], axis=1),
            has_box=(boxes[:, 1] > boxes[:, 0]).astype(np.int64),
        )
    workers, index = _worker_split(input_context, num_workers, worker_index)
    seed = _worker_seed(seed, index)
    ds = tf.data.Dataset.from_tensor_slices(columns)
    if workers > 1:
        if len(paths) < workers:
            raise DataError(
                f"{len(paths)} audio file(s) for {workers} input workers: need at least one each"
            )
        ds = ds.shard(workers, index)
    local = len(range(index, len(paths), workers))
    order = deterministic or not training
    if cache:
        ds = decode_files(ds, sample_rate, max_seconds, local, log, order).cache(
            "" if cache is True else cache
        )
        if training:
            ds = ds.shuffle(local, seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        if training:
            ds = ds.shuffle(local, seed=seed, reshuffle_each_iteration=True).repeat()
        ds = decode_files(ds, sample_rate, max_seconds, local, log, order)
    crop, pad, trim_db = crop_policies(training, augment, crop, pad, trim_db)
    clips = record_clips(
        ds, clip_samples, training, crop, pad, trim_db, secondary_weight, seed, order, with_ids
    )
    bg = background_batches(
        augment, training, background, clip_samples, batch_size, sample_rate, seed, "", log
    )
    drop = training if drop_remainder is None else drop_remainder
    return _finish(
        augmented_batches(clips, batch_size, training, augment, bg, seed, order, drop),
        workers > 1,
        order,
    )
