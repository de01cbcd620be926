"""One clip of the tf.data input: stateless seeds, crop/pad/trim of a waveform, the window read
from a record, secondary targets re-weighted; record dicts -> (wave, target[, id]) clips."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from birdtpu.data.clip_features import clip_inputs
from birdtpu.data.shards import pcm_window
from birdtpu.errors import DataError
from birdtpu.layers.augment import split_seed

AUTOTUNE = tf.data.AUTOTUNE
CROPS = ("random", "start", "box")
PADS = ("random", "constant", "repeat")


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


def crop_start(n, length: int, crop: str, seed):
    """Where a `length` window of an `n`-sample clip starts: 0 (`start`) or random (`random`)."""
    if crop not in ("random", "start"):
        raise ValueError(f"crop: {crop!r} is not 'random' or 'start'")
    return (
        _randint(seed, tf.maximum(n - length, 0)) if crop == "random" else tf.constant(0, tf.int32)
    )


def _box_start(n, length: int, t_min, t_max, sample_rate, seed=None):
    """Where a `length` window around the labelled box [t_min, t_max] (seconds) starts in an
    `n`-sample clip: without `seed` centred on the box; with `seed` (training) random, containing
    the box, or inside it where the box is longer than the window; kept inside the clip."""
    rate = tf.cast(sample_rate, tf.float32)
    a = tf.clip_by_value(tf.cast(tf.round(tf.cast(t_min, tf.float32) * rate), tf.int32), 0, n)
    b = tf.clip_by_value(tf.cast(tf.round(tf.cast(t_max, tf.float32) * rate), tf.int32), a, n)
    if seed is None:
        start = (a + b) // 2 - length // 2
    else:
        lo, hi = tf.minimum(a, b - length), tf.maximum(a, b - length)
        start = lo + _randint(tf.cast(seed, tf.int32), hi - lo)
    return tf.clip_by_value(start, 0, tf.maximum(n - length, 0))


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


def reweight_secondary(target, label, weight: float):
    """Targets with secondary labels (non-zero, not the primary `label`) set to `weight`."""
    primary = tf.one_hot(label, tf.shape(target)[-1], dtype=target.dtype)
    return primary + tf.cast(weight, target.dtype) * tf.cast(
        (target > 0) & (primary == 0), target.dtype
    )


def band_limit(wave, f_min, f_max, sample_rate):
    """`wave` (float32, static length) with every frequency outside [f_min, f_max] Hz removed:
    the rFFT bins outside the band zeroed, so the mel image of a Rainforest box crop shows only
    the labelled call's band."""
    n = wave.shape[-1]
    spectrum = tf.signal.rfft(wave)
    hz = tf.range(n // 2 + 1, dtype=tf.float32) * tf.cast(sample_rate, tf.float32) / n
    keep = tf.cast((hz >= f_min) & (hz <= f_max), tf.complex64)
    return tf.signal.irfft(spectrum * keep, [n])


def teacher_blend(ids: list[str], soft: np.ndarray, alpha: float):
    """(id, target) -> alpha * target + (1 - alpha) * the teacher's soft targets of `id` (a row of
    `soft`, looked up by `ids`); an id without a row, or a class the teacher left NaN, keeps its
    target."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(ids), tf.range(len(ids), dtype=tf.int64)),
        default_value=-1,
    )
    soft = tf.constant(np.asarray(soft, np.float32))

    def blend(clip_id, target):
        row = table.lookup(clip_id)
        teacher = tf.gather(soft, tf.maximum(row, 0))
        known = (row >= 0) & ~tf.math.is_nan(teacher)
        return tf.where(known, alpha * target + (1.0 - alpha) * teacher, target)

    return blend


def embedding_lookup(ids: list[str], vectors: np.ndarray):
    """A function clip id (string tensor, any shape) -> its row of `vectors` (float32, shape +
    (d,)), zeros for an id not in `ids`; a StaticHashTable, usable inside tf.data `map`."""
    vectors = np.asarray(vectors, np.float32)
    n = len(ids)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(list(ids), dtype=tf.string), tf.range(n, dtype=tf.int64)
        ),
        default_value=-1,
    )
    rows = tf.constant(np.concatenate([vectors, np.zeros((1, vectors.shape[1]), np.float32)]))

    def lookup(clip_id):
        row = table.lookup(clip_id)
        return tf.gather(rows, tf.where(row >= 0, row, n))

    return lookup


def target_mask(ex, target):
    """(classes,) weight of each class's target in a record: 1 (known) for every class, but a
    negative record (`positive` 0, a Rainforest false-positive box) knows only its own `label`'s
    absence, so the other classes weigh 0 (unknown)."""
    ones = tf.ones_like(target)
    if "positive" not in ex:
        return ones
    own = tf.one_hot(ex["label"], tf.shape(target)[-1], dtype=target.dtype)
    return tf.where(ex["positive"] > 0, ones, own)


# ------------------------------------------------------------------ seeds


def seed_stream(seed, salt: int):
    """An endless dataset of int32 [2] stateless seeds (`salt` separates streams of one seed)."""
    stream = tf.data.Dataset.random(seed=None if seed is None else seed * 1000003 + salt)
    return stream.batch(2).map(lambda s: tf.cast(tf.math.floormod(s, 2**31 - 1), tf.int32))


def _numbered_seed(seed, salt: int):
    """A function of an element's number (`Dataset.enumerate`) giving its int32 [2] stateless seed,
    cheaper per element than zipping a `seed_stream` stream; keyed by `seed` and `salt` (random if None)."""
    key = np.random.randint(2**31 - 1) if seed is None else (seed * 1000003 + salt) % (2**31 - 1)
    return lambda i: tf.stack(
        [tf.constant(key, tf.int32), tf.cast(tf.math.floormod(i, 2**31 - 1), tf.int32)]
    )


# ------------------------------------------------------------------ records to clips


def crop_policies(training: bool, augment, crop, pad, trim_db):
    """Crop, pad and trim settings: explicit arguments, else the augment config in training, else
    the evaluation defaults (first samples, zeros after, no trim)."""
    train_cfg = augment if training and augment is not None else None
    crop = crop or (train_cfg.crop if train_cfg else "random" if training else "start")
    pad = pad or (train_cfg.pad if train_cfg else "random" if training else "constant")
    trim_db = trim_db if trim_db is not None else (train_cfg.trim_db if train_cfg else 0.0)
    if crop not in CROPS:
        raise ValueError(f"crop: {crop!r} is not one of {', '.join(CROPS)}")
    return crop, pad, trim_db


def trimmed(wave, trim_db: float):
    """`wave` without its leading and trailing silence (`trim_bounds`; 0: unchanged)."""
    if trim_db <= 0:
        return wave
    start, end = trim_bounds(wave, trim_db)
    return wave[start:end]


def window_reader(ex, length: int, trim_db: float = 0.0):
    """(samples, trimmed offset, window(start)) of a record dict: `parse_header` records read a
    window's bytes (int16), decoded ones (`audio`) slice it, after trimming (float32)."""
    if "record" in ex:
        return tf.cast(ex["num_samples"], tf.int32), 0, lambda start: pcm_window(ex, start, length)
    wave, offset = ex["audio"], 0
    if trim_db > 0:
        offset, end = trim_bounds(wave, trim_db)
        wave = wave[offset:end]
    return tf.shape(wave)[0], offset, lambda start: wave[start : start + length]


def record_clips(
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
    weight: float | None = None,
    teacher=None,
    band: bool = False,
    clip_trim_db: float | None = None,
    embeddings=None,
):
    """Dataset of record dicts -> (wave, target[, id][, mask]) of static length, one seed per record.

    Records from `parse_header` (shards) give int16 waves read straight from the window's bytes
    (`augmented_batches` converts whole batches to float); decoded records (`audio`) give float32.
    With a `weight`, each clip carries its target mask (`target_mask`) times `weight`. `teacher`
    (ids, soft targets, alpha) blends alpha * target + (1 - alpha) * the soft targets of the
    record's id (`teacher_blend`). `band`: a clip with a labelled box keeps only the box's
    frequency band (`band_limit`); every clip is then float32. `clip_trim_db` (decoded records):
    the wave becomes a dict, "waveform" and the clip inputs (`clip_features.clip_inputs`) of the
    whole recording trimmed at `clip_trim_db` (0: untrimmed), whatever the crop's own trim.
    `embeddings` (ids, vectors: a teacher's, `train.teacher_embeddings`): the wave dict also
    holds the record id's "teacher_embedding" (zeros for an id without one).
    """
    seed_of = _numbered_seed(seed, 1)
    blend = teacher_blend(*teacher) if teacher is not None else None
    embedding_of = embedding_lookup(*embeddings) if embeddings is not None else None

    def prepare(i, ex):
        seeds = split_seed(seed_of(i), 2)
        n, offset, window = window_reader(ex, clip_samples, trim_db)
        start = crop_start(
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
        if band:
            wave, (f_min, f_max) = to_float(wave), (ex["box"][2], ex["box"][3])
            limited = band_limit(wave, f_min, f_max, ex["sample_rate"])
            wave = tf.where((ex["has_box"] > 0) & (f_max > f_min), limited, wave)
        target = ex["target"]
        if secondary_weight is not None:
            target = reweight_secondary(target, ex["label"], secondary_weight)
        if blend is not None:
            target = blend(ex["id"], target)
        if clip_trim_db is not None:
            wave = {
                "waveform": wave,
                **clip_inputs(trimmed(ex["audio"], clip_trim_db), ex["sample_rate"]),
            }
        if embedding_of is not None:
            inputs = wave if isinstance(wave, dict) else {"waveform": wave}
            wave = {**inputs, "teacher_embedding": embedding_of(ex["id"])}
        out = (wave, target, ex["id"]) if with_ids else (wave, target)
        if weight is None:
            return out
        return (*out, target_mask(ex, target) * weight)

    return examples.enumerate().map(
        prepare, num_parallel_calls=AUTOTUNE, deterministic=deterministic
    )


def to_float(wave):
    """PCM int16 waves as float32 in [-1, 1] (float waves unchanged)."""
    return tf.cast(wave, tf.float32) / 32767.0 if wave.dtype == tf.int16 else wave
