"""The tf.data input: shards -> parse -> crop/pad -> waveform noise -> batch -> mixup.

Every op is a core TensorFlow op on fixed shapes, so the dataset feeds a TPU through
`tf.distribute` without host-side Python per example.
"""

from __future__ import annotations

import tensorflow as tf

from birdtpu.data.shards import parse_example

AUTOTUNE = tf.data.AUTOTUNE


def crop_or_pad(wave, length: int, training: bool, seed=None):
    """A window of exactly `length` samples.

    Training: a random window of a longer clip; a shorter clip is placed at a random offset in
    zeros. Evaluation: the first `length` samples, zero-padded at the end.
    """
    n = tf.shape(wave)[0]
    if training:
        start = tf.random.uniform([], 0, tf.maximum(n - length, 0) + 1, tf.int32, seed=seed)
        wave = wave[start: start + length]
        pad = length - tf.shape(wave)[0]
        left = tf.random.uniform([], 0, pad + 1, tf.int32, seed=seed)
        wave = tf.pad(wave, [[left, pad - left]])
    else:
        wave = wave[:length]
        wave = tf.pad(wave, [[0, length - tf.shape(wave)[0]]])
    return tf.ensure_shape(wave, [length])


def add_noise(wave, prob: float, snr_db: tuple[float, float]):
    """With probability `prob`, Gaussian noise at an SNR drawn uniformly from `snr_db`."""
    power = tf.reduce_mean(tf.square(wave)) + 1e-10
    snr = tf.random.uniform([], snr_db[0], snr_db[1])
    noise = tf.random.normal(tf.shape(wave)) * tf.sqrt(power / tf.pow(10.0, snr / 10.0))
    return tf.where(tf.random.uniform([]) < prob, wave + noise, wave)


def _beta(shape, alpha: float):
    a = tf.random.gamma(shape, alpha)
    b = tf.random.gamma(shape, alpha)
    return a / (a + b + 1e-12)


def mixup(wave, target, prob: float, alpha: float):
    """Batch MixUp with one lambda per example: each clip mixes with its neighbour in the batch."""
    batch = tf.shape(wave)[0]
    lam = _beta([batch], alpha)
    lam = tf.where(tf.random.uniform([batch]) < prob, tf.maximum(lam, 1.0 - lam), tf.ones([batch]))
    other = tf.roll(tf.range(batch), shift=1, axis=0)
    wave = lam[:, None] * wave + (1.0 - lam[:, None]) * tf.gather(wave, other)
    target = lam[:, None] * target + (1.0 - lam[:, None]) * tf.gather(target, other)
    return wave, target


def build_dataset(paths: list[str], num_classes: int, clip_samples: int, batch_size: int,
                  training: bool, augment=None, compression: str = "", shuffle_buffer: int = 1024,
                  seed: int | None = None, deterministic: bool = False, with_ids: bool = False):
    """Batches of (waveform [batch, clip_samples], target [batch, classes]) from shard `paths`.

    Training repeats, shuffles files and records, augments (when `augment` is given) and drops the
    last partial batch (static shapes for TPU). Evaluation reads in order, once, keeping every
    clip; `with_ids` adds the clip ids as a third element.
    """
    if not paths:
        raise ValueError("no shard files to read")
    files = tf.data.Dataset.from_tensor_slices(paths)
    if training:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = files.interleave(lambda f: tf.data.TFRecordDataset(f, compression or None),
                          cycle_length=min(len(paths), 16), num_parallel_calls=AUTOTUNE,
                          deterministic=deterministic or not training)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()

    def prepare(serialized):
        ex = parse_example(serialized, num_classes)
        wave = crop_or_pad(ex["audio"], clip_samples, training, seed)
        if training and augment is not None and augment.noise_prob > 0:
            wave = add_noise(wave, augment.noise_prob, tuple(augment.noise_snr_db))
        return (wave, ex["target"], ex["id"]) if with_ids else (wave, ex["target"])

    ds = ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=deterministic or not training)
    ds = ds.batch(batch_size, drop_remainder=training)
    if training and augment is not None and augment.mixup_prob > 0:
        ds = ds.map(lambda w, t: mixup(w, t, augment.mixup_prob, augment.mixup_alpha),
                    num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic or not training
    return ds.with_options(options).prefetch(AUTOTUNE)
