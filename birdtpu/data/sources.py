"""Where the tf.data input reads audio besides shards: files decoded on the host as they are read,
and endless batches of background (no-call) crops for mixing."""

from __future__ import annotations

import threading

import numpy as np
import tensorflow as tf

from birdtpu.data.audio import AUDIO_EXTENSIONS, AudioError, load_audio
from birdtpu.data.crops import AUTOTUNE, crop_start, pad_to, seed_stream, to_float, window_reader
from birdtpu.data.shards import parse_header
from birdtpu.errors import DataError
from birdtpu.layers.augment import split_seed

SHARD_SUFFIXES = (".tfrec", ".tfrecord", ".tfrec.gz", ".tfrecord.gz")


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


def decode_files(ds, sample_rate, max_seconds, total, log, deterministic):
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
            waves = decode_files(
                files.map(lambda p: {"path": p}), sample_rate, None, len(audio), log, False
            )

    def crop(ex, s):
        seeds = split_seed(s, 2)
        n, _, window = window_reader(ex if isinstance(ex, dict) else {"audio": ex}, clip_samples)
        return to_float(
            pad_to(
                window(crop_start(n, clip_samples, "random", seeds[0])),
                clip_samples,
                "repeat",
                seeds[1],
            )
        )

    crops = tf.data.Dataset.zip((waves.repeat(), seed_stream(seed, 7))).map(
        crop, num_parallel_calls=AUTOTUNE
    )
    return crops.batch(batch_size, drop_remainder=True)
