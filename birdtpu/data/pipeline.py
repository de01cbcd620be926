"""The tf.data input builders, `build_dataset` (shards) and `build_file_dataset` (audio files):
records -> trim -> crop/pad -> (target masks) -> (a second shard set, e.g. pseudo-labels: its
windows MixUp'd into the clips and/or sampled in) -> batch -> waveform augmentations, background
mixing, MixUp/CutMix -> prefetch.

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
from birdtpu.data.crops import AUTOTUNE, crop_policies, record_clips, seed_stream
from birdtpu.data.shards import parse_example, parse_header
from birdtpu.data.sources import decode_files
from birdtpu.errors import DataError
from birdtpu.layers.mix_ops import mix_targets


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


_MIX_SALT = 7919  # the sampled-in stream's seed: the worker's seed plus this
_PAIR_SALT = 104729  # the paired stream's (labelled clip + pseudo window MixUp)


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


def _second_stream(
    paths,
    workers,
    index,
    seed,
    salt,
    order,
    parse,
    clip_args,
    with_ids,
    weight,
    band,
    clip_trim_db,
    embeddings,
):
    """The clips of a second shard set (pseudo-labels) for training: files shuffled and repeated,
    split among workers, cropped as the training records, its targets as written; own seed."""
    seed = None if seed is None else seed + salt
    compression, cycle_length, num_classes, clip_samples, crop, pad, trim_db = clip_args
    ds = _records(paths, workers, index, True, seed, order, compression, cycle_length, False)
    ds = ds.map(lambda s: parse(s, num_classes), num_parallel_calls=AUTOTUNE, deterministic=order)
    return record_clips(
        ds,
        clip_samples,
        True,
        crop,
        pad,
        trim_db,
        None,
        seed,
        order,
        with_ids,
        weight,
        None,
        band,
        clip_trim_db,
        embeddings,
    )


def _paired(clips, partners, prob: float, lam: float, labels: str, seed, order: bool, masked: bool):
    """Each clip MixUp'd with the next clip of `partners` (a pseudo-labelled window) with
    probability `prob`: lam * clip + (1 - lam) * partner, targets by `labels` (mix_targets) and
    target masks and clip inputs by their shares; int16 waves stay int16 (rounded)."""

    def mix(a, b, s):
        on = tf.random.stateless_uniform([], s) < prob
        share = tf.where(on, tf.constant(lam, tf.float32), 1.0)
        wave = tf.nest.map_structure(
            lambda x, y: share * tf.cast(x, tf.float32) + (1.0 - share) * tf.cast(y, tf.float32),
            a[0],
            b[0],
        )
        if not isinstance(wave, dict) and a[0].dtype == tf.int16:
            wave = tf.cast(tf.round(wave), tf.int16)
        target = mix_targets(a[1][None], b[1][None], share[None], on[None], labels)[0]
        if not masked:
            return (wave, target, *a[2:])
        mask = share * a[-1] + (1.0 - share) * b[-1]
        return (wave, target, *a[2:-1], mask)

    seeds = seed_stream(seed, _PAIR_SALT)
    return tf.data.Dataset.zip((clips, partners, seeds)).map(
        mix, num_parallel_calls=AUTOTUNE, deterministic=order
    )


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
    pair_prob: float = 0.0,
    pair_lambda: float = 0.5,
    masks: bool = False,
    mix_weight: float = 1.0,
    teacher=None,
    clip_trim_db: float | None = None,
    embeddings=None,
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
    mixes the two. r = 0: the dataset without it, the same bytes. `pair_prob` p > 0: each
    labelled clip is MixUp'd, with probability p, with a window of `mix_paths` (its own stream):
    `pair_lambda` of the clip plus the rest of the window, targets as `augment.mix_labels` says.

    `masks`: each clip carries its target mask (`crops.target_mask`: a Rainforest false-positive
    box knows only its own species) as a third element (fourth after ids), mixed with the clips,
    for the losses and metrics as a (batch, classes) sample weight; the clips of `mix_paths`
    weigh `mix_weight` (the loss weight of soft targets).

    `teacher` (training; ids, soft targets (ids, classes), alpha): distillation, each labelled
    clip's target blended with its recording's teacher row (`crops.teacher_blend`).
    `augment.box_band` (training): a box crop keeps only the box's f_min..f_max band.
    `clip_trim_db` (a model with `model.global_features`): the first element is a dict, the
    "waveform" crops and the clip inputs of each whole recording trimmed at `clip_trim_db`
    (`birdtpu.data.clip_features`; 0: untrimmed), mixed with the waveforms (MixUp, pairing).
    `embeddings` (training; ids, vectors): the first element is a dict with each clip's
    "teacher_embedding" too (`crops.embedding_lookup`; zeros for the clips of `mix_paths`).
    """
    if not paths:
        raise DataError("no shard files to read")
    if not 0 <= mix_ratio < 1:
        raise ValueError(f"mix_ratio {mix_ratio} is not in [0, 1)")
    if not 0 <= pair_prob <= 1:
        raise ValueError(f"pair_prob {pair_prob} is not in [0, 1]")
    if mix_weight != 1 and not masks:
        raise ValueError("mix_weight other than 1 needs masks=True")
    mixing, pairing = mix_ratio > 0, pair_prob > 0
    if (mixing or pairing) and not (training and mix_paths):
        raise ValueError("mix_ratio or pair_prob > 0 needs mix_paths and training=True")
    workers, index = _worker_split(input_context, num_workers, worker_index)
    seed = _worker_seed(seed, index)
    order = deterministic or not training
    ds = _records(paths, workers, index, training, seed, order, compression, cycle_length, cache)
    crop, pad, trim_db = crop_policies(training, augment, crop, pad, trim_db)
    whole = trim_db > 0 or clip_trim_db is not None  # trimming and clip inputs read it all
    parse = parse_example if whole else parse_header
    band = training and augment is not None and augment.box_band
    ds = ds.map(lambda s: parse(s, num_classes), num_parallel_calls=AUTOTUNE, deterministic=order)
    if training and copies is not None:
        ds = balance(ds, copies, seed, order)
    clips = record_clips(
        ds,
        clip_samples,
        training,
        crop,
        pad,
        trim_db,
        secondary_weight,
        seed,
        order,
        with_ids,
        1.0 if masks else None,
        teacher if training else None,
        band,
        clip_trim_db,
        embeddings if training else None,
    )
    clip_args = (compression, cycle_length, num_classes, clip_samples, crop, pad, trim_db)
    second = dict(
        order=order,
        parse=parse,
        clip_args=clip_args,
        with_ids=with_ids,
        weight=mix_weight if masks else None,
        band=band,  # float32 waves in both streams
        clip_trim_db=clip_trim_db,
        embeddings=embeddings,
    )
    if pairing:  # each labelled clip with its own pseudo-labelled window
        partners = _second_stream(mix_paths, workers, index, seed, _PAIR_SALT, **second)
        labels = augment.mix_labels if augment is not None else "weight"
        clips = _paired(clips, partners, pair_prob, pair_lambda, labels, seed, order, masks)
    if mixing:  # the second stream: its own draws, its soft targets as they are
        sampled = _second_stream(mix_paths, workers, index, seed, _MIX_SALT, **second)
        clips = tf.data.Dataset.sample_from_datasets(
            [clips, sampled], weights=[1.0 - mix_ratio, mix_ratio], seed=seed
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
        augmented_batches(clips, batch_size, training, augment, bg, seed, order, drop, masks),
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
