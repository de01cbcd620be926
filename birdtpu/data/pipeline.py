"""The tf.data input: records -> trim -> crop/pad -> batch -> waveform augmentations, background
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
"""

from __future__ import annotations

import threading

import numpy as np
import tensorflow as tf

from birdtpu import fs
from birdtpu.data.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from birdtpu.data.shards import parse_example, parse_header, pcm_window
from birdtpu.errors import DataError
from birdtpu.layers.augment import BackgroundMix, CutMix, MixUp, WaveAugment, split_seed

AUTOTUNE = tf.data.AUTOTUNE
CROPS = ("random", "start", "box")
PADS = ("random", "constant", "repeat")
SHARD_SUFFIXES = (".tfrec", ".tfrecord", ".tfrec.gz", ".tfrecord.gz")


# ------------------------------------------------------------------ one clip


def _seed(seed):
    """`seed` as int32 [2], or a fresh random one when None (eager convenience)."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    return tf.cast(seed, tf.int32)


def _randint(seed, hi):
    """A uniform integer in [0, hi] (hi >= 0, a scalar tensor)."""
    u = tf.random.stateless_uniform([], seed)
    return tf.minimum(tf.cast(u * tf.cast(hi + 1, tf.float32), tf.int32), hi)


def pad_to(wave, length: int, pad: str = "constant", seed=None):
    """`wave` (at most `length` samples) padded to exactly `length`: `constant` zeros after it,
    `random` zeros split at a random offset, `repeat` the clip tiled."""
    if pad not in PADS:
        raise ValueError(f"pad: {pad!r} is not one of {', '.join(PADS)}")
    n = tf.shape(wave)[0]
    missing = length - n
    if pad == "repeat":
        tiled = tf.tile(wave, [length // tf.maximum(n, 1) + 1])
        wave = tf.cond(n > 0, lambda: tiled[:length], lambda: tf.zeros([length], wave.dtype))
    else:
        left = _randint(_seed(seed), missing) if pad == "random" else 0
        wave = tf.pad(wave, [[left, missing - left]])
    return tf.ensure_shape(wave, [length])


def _crop_start(n, length: int, crop: str, seed):
    """Where a `length` window of an `n`-sample clip starts: 0 (`start`) or random (`random`)."""
    if crop not in ("random", "start"):
        raise ValueError(f"crop: {crop!r} is not 'random' or 'start' (use box_crop for boxes)")
    return (
        _randint(seed, tf.maximum(n - length, 0)) if crop == "random" else tf.constant(0, tf.int32)
    )


def _box_start(n, length: int, t_min, t_max, sample_rate, seed=None):
    """Where the `length` window of `box_crop` starts in an `n`-sample clip."""
    rate = tf.cast(sample_rate, tf.float32)
    a = tf.clip_by_value(tf.cast(tf.round(tf.cast(t_min, tf.float32) * rate), tf.int32), 0, n)
    b = tf.clip_by_value(tf.cast(tf.round(tf.cast(t_max, tf.float32) * rate), tf.int32), a, n)
    if seed is None:
        start = (a + b) // 2 - length // 2
    else:
        lo, hi = tf.minimum(a, b - length), tf.maximum(a, b - length)
        start = lo + _randint(tf.cast(seed, tf.int32), hi - lo)
    return tf.clip_by_value(start, 0, tf.maximum(n - length, 0))


def crop_or_pad(wave, length: int, crop: str = "start", pad: str = "constant", seed=None):
    """A window of exactly `length` samples: `start` the first ones, `random` a random window of a
    longer clip; a shorter clip is padded by `pad` (see `pad_to`). `seed`: int32 [2] or None."""
    seeds = split_seed(_seed(seed), 2)
    start = _crop_start(tf.shape(wave)[0], length, crop, seeds[0])
    return pad_to(wave[start : start + length], length, pad, seeds[1])


def box_crop(wave, length: int, t_min, t_max, sample_rate, seed=None, pad: str = "constant"):
    """A `length` window around the labelled box [t_min, t_max] (seconds into `wave`; the records'
    `box` feature, rows with `has_box` 0 get the random or start crop instead).

    Without `seed`: centred on the box. With `seed` (training): a random window that contains the
    box, or lies inside it when the box is longer than the window. Kept inside the recording
    where it is long enough, else padded by `pad`.
    """
    start = _box_start(tf.shape(wave)[0], length, t_min, t_max, sample_rate, seed)
    return pad_to(wave[start : start + length], length, pad, seed)


def trim_bounds(wave, top_db: float = 60.0, frame_length: int = 2048, hop_length: int = 512):
    """(start, end) of `wave` without leading and trailing frames whose RMS is more than `top_db`
    below the loudest frame: the same samples as `librosa.effects.trim` with these settings."""
    n = tf.shape(wave)[0]
    x = tf.pad(wave, [[frame_length // 2, frame_length // 2]])
    frames = tf.signal.frame(x, frame_length, hop_length)
    rms = tf.sqrt(tf.reduce_mean(tf.square(frames), axis=-1))
    db = 20.0 * tf.math.log(tf.maximum(rms, 1e-5)) / tf.math.log(10.0)
    loud = tf.cast(
        tf.where(db > tf.reduce_max(db) - top_db)[:, 0], tf.int32
    )  # never empty: the max
    return tf.reduce_min(loud) * hop_length, tf.minimum(n, (tf.reduce_max(loud) + 1) * hop_length)


def trim_silence(wave, top_db: float = 60.0, frame_length: int = 2048, hop_length: int = 512):
    """`wave` cut to `trim_bounds`."""
    start, end = trim_bounds(wave, top_db, frame_length, hop_length)
    return wave[start:end]


def reweight_secondary(target, label, weight: float):
    """Targets with secondary labels (non-zero, not the primary `label`) set to `weight`."""
    primary = tf.one_hot(label, tf.shape(target)[-1], dtype=target.dtype)
    return primary + tf.cast(weight, target.dtype) * tf.cast(
        (target > 0) & (primary == 0), target.dtype
    )


# ------------------------------------------------------------------ sources


def _worker_split(input_context, num_workers: int, worker_index: int) -> tuple[int, int]:
    if input_context is not None:
        return input_context.num_input_pipelines, input_context.input_pipeline_id
    if not 0 <= worker_index < num_workers:
        raise ValueError(f"worker_index {worker_index} is not in [0, {num_workers})")
    return num_workers, worker_index


def _seeds(seed, salt: int):
    """An endless dataset of int32 [2] stateless seeds (`salt` separates streams of one seed)."""
    stream = tf.data.Dataset.random(seed=None if seed is None else seed * 1000003 + salt)
    return stream.batch(2).map(lambda s: tf.cast(tf.math.floormod(s, 2**31 - 1), tf.int32))


def _worker_seed(seed, index: int):
    """Input worker `index`'s seed: its own random draws (crops, MixUp), the same as `seed` for the
    first worker (and for a single process)."""
    return None if seed is None else seed + 1000003 * index


def _numbered_seed(seed, salt: int):
    """A function of an element's number (`Dataset.enumerate`) giving its int32 [2] stateless seed,
    cheaper per element than zipping a `_seeds` stream; keyed by `seed` and `salt` (random if None)."""
    key = np.random.randint(2**31 - 1) if seed is None else (seed * 1000003 + salt) % (2**31 - 1)
    return lambda i: tf.stack(
        [tf.constant(key, tf.int32), tf.cast(tf.math.floormod(i, 2**31 - 1), tf.int32)]
    )


def _glob(pattern: str) -> list[str]:
    if tf.io.gfile.isdir(pattern):
        pattern = pattern.rstrip("/") + "/*"
    return sorted(tf.io.gfile.glob(pattern))


def _decoder(sample_rate: int, max_seconds: float | None, total: int, log):
    """A tf.numpy_function body: path -> (wave, ok); unreadable files are logged once and skipped."""
    skipped: dict[str, str] = {}
    lock = threading.Lock()

    def decode(path):
        path = path.decode()
        try:
            wave, _ = load_audio(path, sample_rate, max_seconds=max_seconds)
            return wave, True
        except AudioError as err:
            with lock:
                if path not in skipped:
                    skipped[path] = err.reason
                    log(
                        f"pipeline: skip {path}: {err.reason} ({len(skipped)} of {total} files skipped)"
                    )
                if len(skipped) >= total:
                    raise DataError(
                        f"pipeline: all {total} audio files are unreadable (last: {path})"
                    ) from None
            return np.zeros(0, np.float32), False

    return decode


def _decode_map(ds, sample_rate, max_seconds, total, log, deterministic):
    """Dataset of dicts with `path` -> the same dicts with decoded `audio`, unreadable files dropped."""
    decode = _decoder(sample_rate, max_seconds, total, log)

    def fn(ex):
        wave, ok = tf.numpy_function(decode, [ex["path"]], [tf.float32, tf.bool], stateful=False)
        return {**ex, "audio": tf.ensure_shape(wave, [None]), "ok": tf.ensure_shape(ok, [])}

    ds = ds.map(fn, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    return ds.filter(lambda ex: ex["ok"])


def background_dataset(
    source,
    clip_samples: int,
    batch_size: int,
    sample_rate: int | None = None,
    seed: int | None = None,
    compression: str = "",
    log=print,
):
    """Endless batches (batch, clip_samples) of random crops of no-call audio.

    `source`: a folder or glob of TFRecord shards (`*.tfrec`, only their `audio` is read) or of
    audio files (decoded with `sample_rate`), or a `tf.data.Dataset` of 1-D waveforms.
    """
    if isinstance(source, tf.data.Dataset):
        waves = source
    else:
        paths = _glob(source)
        if not paths:
            raise DataError(f"augment.background: {source}: no files found")
        shards = [p for p in paths if p.lower().endswith(SHARD_SUFFIXES)]
        audio = [p for p in paths if p.lower().endswith(AUDIO_EXTENSIONS)]
        if not shards and not audio:
            raise DataError(f"augment.background: {source}: no shards (*.tfrec) or audio files")
        files = (
            tf.data.Dataset.from_tensor_slices(shards or audio)
            .shuffle(len(paths), seed=seed)
            .repeat()
        )
        if shards:
            waves = files.interleave(
                lambda f: tf.data.TFRecordDataset(f, compression or None),
                cycle_length=min(len(shards), 8),
                num_parallel_calls=AUTOTUNE,
                deterministic=False,
            )
            waves = waves.map(lambda s: parse_header(s, None), num_parallel_calls=AUTOTUNE)
        else:
            if not sample_rate:
                raise DataError(f"augment.background: {source}: audio files need the sample rate")
            waves = _decode_map(
                files.map(lambda p: {"path": p}), sample_rate, None, len(audio), log, False
            )

    def crop(ex, s):
        seeds = split_seed(s, 2)
        n, _, window = _reader(ex if isinstance(ex, dict) else {"audio": ex}, clip_samples)
        return to_float(
            pad_to(
                window(_crop_start(n, clip_samples, "random", seeds[0])),
                clip_samples,
                "repeat",
                seeds[1],
            )
        )

    crops = tf.data.Dataset.zip((waves.repeat(), _seeds(seed, 7))).map(
        crop, num_parallel_calls=AUTOTUNE
    )
    return crops.batch(batch_size, drop_remainder=True)


# ------------------------------------------------------------------ the common tail


def _policies(training: bool, augment, crop, pad, trim_db):
    """Crop, pad and trim settings: explicit arguments, else the augment config in training, else
    the evaluation defaults (first samples, zeros after, no trim)."""
    train_cfg = augment if training and augment is not None else None
    crop = crop or (train_cfg.crop if train_cfg else "random" if training else "start")
    pad = pad or (train_cfg.pad if train_cfg else "random" if training else "constant")
    trim_db = trim_db if trim_db is not None else (train_cfg.trim_db if train_cfg else 0.0)
    if crop not in CROPS:
        raise ValueError(f"crop: {crop!r} is not one of {', '.join(CROPS)}")
    return crop, pad, trim_db


def _reader(ex, length: int, trim_db: float = 0.0):
    """(samples, trimmed offset, window(start)) of a record dict: `parse_header` records read a
    window's bytes (int16), decoded ones (`audio`) slice it, after trimming (float32)."""
    if "record" in ex:
        return tf.cast(ex["num_samples"], tf.int32), 0, lambda start: pcm_window(ex, start, length)
    wave, offset = ex["audio"], 0
    if trim_db > 0:
        offset, end = trim_bounds(wave, trim_db)
        wave = wave[offset:end]
    return tf.shape(wave)[0], offset, lambda start: wave[start : start + length]


def _clips(
    examples,
    clip_samples: int,
    training: bool,
    crop: str,
    pad: str,
    trim_db: float,
    secondary_weight,
    seed,
    deterministic: bool,
    with_ids: bool,
):
    """Dataset of record dicts -> (wave, target[, id]) of static length, one seed per record.

    Records from `parse_header` (shards) give int16 waves read straight from the window's bytes
    (`_batches` converts whole batches to float); decoded records (`audio`) give float32.
    """
    seed_of = _numbered_seed(seed, 1)

    def prepare(i, ex):
        seeds = split_seed(seed_of(i), 2)
        n, offset, window = _reader(ex, clip_samples, trim_db)
        start = _crop_start(
            n, clip_samples, crop if crop != "box" else "random" if training else "start", seeds[0]
        )
        if crop == "box":
            if "box" not in ex:
                raise DataError(
                    "crop 'box' needs records with a labelled box (t_min/t_max); these have none"
                )
            shift = tf.cast(offset, tf.float32) / tf.cast(ex["sample_rate"], tf.float32)
            t_min, t_max = ex["box"][0] - shift, ex["box"][1] - shift
            boxed = _box_start(
                n, clip_samples, t_min, t_max, ex["sample_rate"], seeds[0] if training else None
            )
            start = tf.where((ex["has_box"] > 0) & (t_max > t_min), boxed, start)
        wave = pad_to(window(start), clip_samples, pad, seeds[1])
        target = ex["target"]
        if secondary_weight is not None:
            target = reweight_secondary(target, ex["label"], secondary_weight)
        return (wave, target, ex["id"]) if with_ids else (wave, target)

    return examples.enumerate().map(
        prepare, num_parallel_calls=AUTOTUNE, deterministic=deterministic
    )


def to_float(wave):
    """PCM int16 waves as float32 in [-1, 1] (float waves unchanged)."""
    return tf.cast(wave, tf.float32) / 32767.0 if wave.dtype == tf.int16 else wave


def _augmenters(augment, background):
    """The batch-level layers an AugmentConfig asks for (None where inactive)."""
    if augment is None:
        return None, None, None, None
    wave = WaveAugment.from_augment_config(augment)
    mix = (
        BackgroundMix(augment.background_prob, augment.background_snr_db)
        if background is not None
        else None
    )
    mixup = (
        MixUp(augment.mixup_prob, augment.mixup_alpha, augment.mix_labels)
        if augment.mixup_prob > 0
        else None
    )
    cutmix = (
        CutMix(augment.cutmix_prob, augment.cutmix_alpha, augment.mix_labels)
        if augment.cutmix_prob > 0
        else None
    )
    return (wave if wave.active else None), mix, mixup, cutmix


def _batches(
    clips,
    batch_size: int,
    training: bool,
    augment,
    background,
    seed,
    deterministic: bool,
    drop_remainder: bool,
):
    """Batch, then (training) the waveform augmentations, background, MixUp and CutMix per batch."""
    ds = clips.batch(
        batch_size,
        drop_remainder=drop_remainder,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    wave_aug, bg_mix, mixup, cutmix = _augmenters(augment if training else None, background)
    if not any((wave_aug, bg_mix, mixup, cutmix)):
        if ds.element_spec[0].dtype == tf.float32:
            return ds
        return ds.map(
            lambda *batch: (to_float(batch[0]), *batch[1:]),
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
    parts = (ds, _seeds(seed, 2)) + ((background,) if bg_mix else ())

    def apply(batch, s, bg=None):
        wave, target = to_float(batch[0]), batch[1]
        seeds = split_seed(s, 4)
        if bg_mix:
            wave = bg_mix.augment((wave, bg), seeds[0])
        if wave_aug:
            wave = wave_aug.augment(wave, seeds[1])
        if mixup:
            wave, target = mixup.augment((wave, target), seeds[2])
        if cutmix:
            wave, target = cutmix.augment((wave, target), seeds[3])
        return (wave, target, *batch[2:])

    return tf.data.Dataset.zip(parts).map(
        apply, num_parallel_calls=AUTOTUNE, deterministic=deterministic
    )


def _finish(ds, sharded: bool, deterministic: bool):
    options = tf.data.Options()
    options.deterministic = deterministic
    if sharded:  # already split per worker: tf.distribute must not split it again
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(AUTOTUNE)


def _background(
    augment, training, background, clip_samples, batch_size, sample_rate, seed, compression, log
):
    if not training or augment is None or augment.background_prob <= 0:
        return None
    return background_dataset(
        background if background is not None else augment.background,
        clip_samples,
        batch_size,
        sample_rate,
        seed,
        compression,
        log,
    )


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
    `deterministic` fixes the order (and, with `seed`, every random draw).
    """
    if not paths:
        raise DataError("no shard files to read")
    workers, index = _worker_split(input_context, num_workers, worker_index)
    seed = _worker_seed(seed, index)
    files = tf.data.Dataset.from_tensor_slices(list(paths))
    record_split = False
    if workers > 1:
        if len(paths) >= workers:
            files = files.shard(workers, index)
        elif training:
            raise DataError(
                f"{len(paths)} shard file(s) for {workers} input workers: each worker reads whole "
                f"files, so there must be at least {workers} (better {4 * workers}+); write smaller "
                "shards (shards.target_mb) or use fewer workers"
            )
        else:
            record_split = True
    order = deterministic or not training
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
    crop, pad, trim_db = _policies(training, augment, crop, pad, trim_db)
    parse = parse_example if trim_db > 0 else parse_header  # trimming needs the whole recording
    ds = ds.map(lambda s: parse(s, num_classes), num_parallel_calls=AUTOTUNE, deterministic=order)
    clips = _clips(
        ds, clip_samples, training, crop, pad, trim_db, secondary_weight, seed, order, with_ids
    )
    if (
        training
    ):  # shuffle clips, not records: the buffer holds clip_samples (int16 from shards) per entry
        clips = clips.shuffle(shuffle_buffer, seed=seed)
    if augment is not None and training and augment.background_prob > 0 and sample_rate is None:
        sample_rate = _first_sample_rate(paths[0], compression)
    bg = _background(
        augment, training, background, clip_samples, batch_size, sample_rate, seed, compression, log
    )
    drop = training if drop_remainder is None else drop_remainder
    return _finish(
        _batches(clips, batch_size, training, augment, bg, seed, order, drop), workers > 1, order
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
        ds = _decode_map(ds, sample_rate, max_seconds, local, log, order).cache(
            "" if cache is True else cache
        )
        if training:
            ds = ds.shuffle(local, seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        if training:
            ds = ds.shuffle(local, seed=seed, reshuffle_each_iteration=True).repeat()
        ds = _decode_map(ds, sample_rate, max_seconds, local, log, order)
    crop, pad, trim_db = _policies(training, augment, crop, pad, trim_db)
    clips = _clips(
        ds, clip_samples, training, crop, pad, trim_db, secondary_weight, seed, order, with_ids
    )
    bg = _background(
        augment, training, background, clip_samples, batch_size, sample_rate, seed, "", log
    )
    drop = training if drop_remainder is None else drop_remainder
    return _finish(
        _batches(clips, batch_size, training, augment, bg, seed, order, drop), workers > 1, order
    )
