"""The augmentation functions and layers: distributions, per-example draws, timing and pitch, on
both Keras backends; the same functions in a tf.data map (as the pipeline runs them) under either."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import check_layer
from scipy import stats

from birdtpu.config import AugmentConfig
from birdtpu.layers import augment as A
from birdtpu.layers import mix_ops as M
from birdtpu.layers import wave_ops as W
from birdtpu.layers import xp as X

pytestmark = pytest.mark.backends
RATE = 16000
SEED = np.array([3, 4], np.int32)


def npy(x):
    return keras.ops.convert_to_numpy(x)


def compiled(fn):
    """`fn` compiled by XLA under the configured backend."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return tf.function(fn, jit_compile=True)


def tone(freq=1000.0, seconds=1.0, amp=0.5, start=0.0, stop=None):
    t = np.arange(int(seconds * RATE)) / RATE
    on = (t >= start) & (t < (stop if stop is not None else seconds))
    return (amp * np.sin(2 * np.pi * freq * t) * on).astype(np.float32)


def peak_hz(wave):
    return np.argmax(np.abs(np.fft.rfft(wave))) * RATE / len(wave)


def envelope_edges(wave, threshold=0.05):
    active = np.flatnonzero(np.abs(wave) > threshold)
    return active[0] / RATE, active[-1] / RATE


def test_beta_follows_the_distribution_and_compiles():
    for alpha in (0.5, 2.5):
        draws = npy(X.beta(SEED, [20000], alpha))
        assert stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    jitted = npy(compiled(lambda s: X.beta(s, [64], 0.4))(SEED))
    assert jitted.shape == (64,) and ((jitted >= 0) & (jitted <= 1)).all()


def test_partners_are_a_permutation_without_self():
    for seed in range(5):
        p = npy(X.partners(np.array([seed, 1], np.int32), 16))
        assert sorted(p) == list(range(16)) and not (p == np.arange(16)).any()


def test_mixup_draws_one_lambda_per_example():
    x = np.eye(64, dtype=np.float32)  # example i: unit vector i
    y = np.eye(4, dtype=np.float32)[np.arange(64) % 4]
    mixed_x, mixed_y = M.mixup(x, y, SEED, prob=1.0, alpha=0.5)
    mx = npy(mixed_x)
    lam = mx[np.arange(64), np.arange(64)]  # weight kept on itself
    partner = np.argmax(mx - np.diag(lam), axis=1)
    assert (lam >= 0.5 - 1e-6).all() and len(np.unique(np.round(lam, 4))) > 30
    np.testing.assert_allclose(mx[np.arange(64), partner], 1 - lam, atol=1e-6)
    np.testing.assert_allclose(
        npy(mixed_y),
        lam[:, None] * y + (1 - lam[:, None]) * y[partner],
        atol=1e-6,
    )
    same_x, same_y = M.mixup(x, y, SEED, prob=0.0, alpha=0.5)
    np.testing.assert_array_equal(npy(same_x), x)
    np.testing.assert_array_equal(npy(same_y), y)


def test_mixup_labels_by_max_keep_both_labels_whole():
    x = np.eye(32, dtype=np.float32)
    y = np.eye(8, dtype=np.float32)[np.arange(32) % 8] * 0.9
    mixed_x, mixed_y = M.mixup(x, y, SEED, prob=0.5, alpha=1.0, labels="max")
    mx, my = npy(mixed_x), npy(mixed_y)
    mixed = ~np.isclose(np.diag(mx), 1.0)
    assert 5 < mixed.sum() < 27
    partner = np.argmax(mx - np.diag(np.diag(mx)), axis=1)
    np.testing.assert_array_equal(my[mixed], np.maximum(y[mixed], y[partner[mixed]]))
    np.testing.assert_array_equal(my[~mixed], y[~mixed])


@pytest.mark.parametrize("shape", [(32, 400), (32, 6, 50, 1)])
def test_cutmix_pastes_one_time_segment_per_example(shape):
    idx = np.arange(32, dtype=np.float32)
    x = np.broadcast_to(
        idx.reshape((32,) + (1,) * (len(shape) - 1)), shape
    ).copy()  # example i is all i
    y = np.eye(32, dtype=np.float32)
    mixed_x, mixed_y = M.cutmix(x, y, SEED, prob=1.0, alpha=2.5)
    mx, my = npy(mixed_x), npy(mixed_y)
    time = mx if len(shape) == 2 else mx[:, :, :, 0]
    if len(shape) == 4:
        assert (time == time[:, :1]).all()  # the segment spans every mel bin: cut along time only
        time = time[:, 0]
    widths = []
    for i in range(32):
        pasted = np.flatnonzero(time[i] != i)
        if pasted.size:
            assert (np.diff(pasted) == 1).all() and len(
                np.unique(time[i, pasted])
            ) == 1  # one segment, one partner
            np.testing.assert_allclose(my[i, i], 1 - pasted.size / time.shape[1], atol=1e-6)
            np.testing.assert_allclose(my[i].sum(), 1.0, atol=1e-6)
        widths.append(pasted.size)
    assert len(set(widths)) > 10  # one lambda per example


def test_gain_is_per_example_within_range():
    wave = np.tile(tone(), (64, 1))
    out = npy(W.gain(wave, SEED, 0.5, (-6.0, 6.0)))
    ratio_db = 20 * np.log10(np.abs(out).max(1) / np.abs(wave).max(1))
    changed = ~np.isclose(ratio_db, 0.0, atol=1e-4)
    assert 16 < changed.sum() < 48 and (np.abs(ratio_db) <= 6.0 + 1e-3).all()
    assert len(np.unique(np.round(ratio_db[changed], 3))) == changed.sum()


def test_noise_levels():
    wave = np.tile(tone(amp=0.3), (32, 1))
    fixed = npy(W.gaussian_noise(np.zeros_like(wave), SEED, 1.0, (0.01, 0.02)))
    assert ((fixed.std(1) > 0.0095) & (fixed.std(1) < 0.0205)).all()
    for fn in (W.gaussian_noise_snr, W.pink_noise_snr):
        out = npy(fn(wave, SEED, 1.0, (10.0, 20.0)))
        snr = 10 * np.log10((wave**2).mean(1) / ((out - wave) ** 2).mean(1))
        assert (snr > 10 - 1e-3).all() and (snr < 20 + 1e-3).all() and snr.std() > 1


@pytest.mark.parametrize("color, slope, max_corr", [("white", 0.0, 0.2), ("pink", -1.0, 0.5)])
def test_noise_has_its_colour_and_differs_per_example(color, slope, max_corr):
    noise = npy(W.noise(SEED, 8, 2**15, color))
    power = (np.abs(np.fft.rfft(noise, axis=1)) ** 2).mean(0)
    k = np.arange(16, len(power) - 1)
    assert abs(np.polyfit(np.log10(k), np.log10(power[k]), 1)[0] - slope) < 0.15
    np.testing.assert_allclose(np.sqrt((noise**2).mean(1)), 1.0, rtol=1e-3)
    corr = np.corrcoef(noise)[np.triu_indices(8, 1)]
    assert np.abs(corr).max() < max_corr  # no two examples share their noise (see W.noise)


def shifted(wave, k, mode):
    out = np.roll(wave, k)
    if mode == "pad":
        out[:k] = 0 if k > 0 else out[:k]
        out[len(out) + k :] = 0 if k < 0 else out[len(out) + k :]
    return out


@pytest.mark.parametrize("mode", ["roll", "pad"])
def test_time_shift(mode):
    wave = np.tile(np.arange(1, 101, dtype=np.float32), (16, 1))
    out = npy(W.time_shift(wave, SEED, 1.0, 0.3, mode))
    shifts = [
        [k for k in range(-30, 31) if np.array_equal(row, shifted(wave[0], k, mode))] for row in out
    ]
    assert all(len(k) == 1 for k in shifts) and len({k[0] for k in shifts}) > 8


def test_background_mixes_at_the_snr():
    wave = np.tile(tone(amp=0.3), (16, 1))
    background = np.random.default_rng(0).standard_normal(wave.shape).astype(np.float32)
    out = npy(W.mix_background(wave, background, SEED, 1.0, (5.0, 15.0)))
    added = out - wave
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(added, background)]
    snr = 10 * np.log10((wave**2).mean(1) / (added**2).mean(1))
    assert np.min(corr) > 0.999 and (snr > 5 - 1e-3).all() and (snr < 15 + 1e-3).all()


def test_time_stretch_keeps_pitch_and_moves_events():
    burst = tone(1000.0, start=0.25, stop=0.5)
    identity = npy(W.time_stretch(burst[None], SEED, 1.0, (1.0, 1.0)))[0]
    np.testing.assert_allclose(identity, burst, atol=1e-5)
    for rate in (0.8, 1.25):
        out = npy(W.time_stretch(burst[None], SEED, 1.0, (rate, rate)))[0]
        assert out.shape == burst.shape and abs(peak_hz(out) - 1000.0) <= 2
        begin, end = envelope_edges(out)
        assert abs(begin - 0.25 / rate) < 0.03 and abs(end - 0.5 / rate) < 0.03


@pytest.mark.parametrize("steps", [-2.0, 3.0])
def test_pitch_shift_scales_frequency_and_keeps_timing(steps):
    burst = tone(1000.0, start=0.25, stop=0.75)
    out = npy(W.pitch_shift(burst[None], SEED, 1.0, (steps, steps)))[0]
    assert out.shape == burst.shape
    assert abs(peak_hz(out) - 1000.0 * 2 ** (steps / 12)) <= 2
    begin, end = envelope_edges(out)
    assert abs(begin - 0.25) < 0.03 and abs(end - 0.75) < 0.03


@pytest.mark.parametrize(
    "settings",
    [
        dict(gain_prob=1.0, shift_prob=1.0, gauss_prob=1.0, noise_prob=1.0, pink_prob=1.0),
        dict(stretch_prob=1.0, pitch_prob=1.0),
    ],
    ids=["noise-gain-shift", "stretch-pitch"],
)
def test_wave_augment_layer_round_trips_compiles_and_draws_per_example(settings, tmp_path):
    layer = A.WaveAugment.from_augment_config(
        AugmentConfig(**{"noise_prob": 0.0, **settings}), seed=11
    )
    wave = np.tile(tone(amp=0.3, seconds=0.5), (4, 1))
    model = check_layer(layer, wave, wave.shape, 0, tmp_path)
    out = npy(model(wave, training=True))
    assert out.shape == wave.shape and np.isfinite(out).all()
    assert min(np.abs(out[i] - out[j]).max() for i in range(4) for j in range(i)) > 1e-3
    assert not A.WaveAugment.from_augment_config(AugmentConfig(noise_prob=0.0)).active


@pytest.mark.parametrize(
    "make",
    [lambda: A.MixUp(1.0, 0.5, "max", seed=1), lambda: A.CutMix(1.0, 2.5, seed=2)],
    ids=["mixup", "cutmix"],
)
@pytest.mark.parametrize("shape", [(6, 800), (6, 8, 20, 1)], ids=["waves", "spectrograms"])
def test_mix_layers_round_trip_and_compile(make, shape, tmp_path):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]]
    model = check_layer(make(), (x, y), shape, 0, tmp_path)
    mixed_x, mixed_y = (npy(v) for v in model((x, y), training=True))
    assert mixed_x.shape == x.shape and not np.allclose(mixed_x, x)
    assert not np.allclose(mixed_y, y)


def test_background_layer_round_trips_and_compiles(tmp_path):
    rng = np.random.default_rng(1)
    wave, background = rng.random((6, 800), np.float32), rng.random((6, 800), np.float32)
    layer = A.BackgroundMix(1.0, (0.0, 10.0), seed=4)
    mixed = npy(
        check_layer(layer, (wave, background), wave.shape, 0, tmp_path)(
            (wave, background), training=True
        )
    )
    assert mixed.shape == wave.shape and not np.allclose(mixed, wave)


def pipeline_step(wave_aug, bg_mix, mixup, cutmix):
    """The batch augmentation of birdtpu.data.pipeline: explicit seeds, one per layer."""

    def apply(wave, target, background, seed):
        seeds = X.split_seed(seed, 4)
        wave = bg_mix.augment((wave, background), seeds[0])
        wave = wave_aug.augment(wave, seeds[1])
        wave, target = mixup.augment((wave, target), seeds[2])
        return cutmix.augment((wave, target), seeds[3])

    return apply


def test_augment_runs_in_a_tf_data_map_under_either_backend():
    """The functions see TensorFlow tensors there (under JAX too): same numbers as eager TensorFlow
    tensors, the same again for the same seed, others for another seed."""
    rng = np.random.default_rng(2)
    wave = np.tile(tone(amp=0.3, seconds=0.25), (4, 1)) * rng.uniform(0.5, 1, (4, 1))
    wave, background = wave.astype(np.float32), rng.standard_normal(wave.shape, np.float32)
    target = np.eye(4, dtype=np.float32)
    every = dict(gain_prob=1.0, shift_prob=1.0, gauss_prob=1.0, noise_prob=1.0, pink_prob=1.0)
    apply = pipeline_step(
        A.WaveAugment(**every, stretch_prob=1.0, pitch_prob=1.0),
        A.BackgroundMix(1.0),
        A.MixUp(1.0),
        A.CutMix(1.0),
    )
    seeds = np.array([[3, 4], [3, 4], [5, 6]], np.int32)
    ds = tf.data.Dataset.from_tensors((wave, target, background)).repeat(3)
    mapped = tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices(seeds)))
    out = [(a.numpy(), b.numpy()) for a, b in mapped.map(lambda batch, s: apply(*batch, s))]
    eager = apply(*(tf.constant(v) for v in (wave, target, background, seeds[0])))
    np.testing.assert_allclose(out[0][0], eager[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(out[0][1], eager[1].numpy(), atol=1e-6)
    np.testing.assert_array_equal(out[0][0], out[1][0])
    assert not np.allclose(out[0][0], out[2][0]) and np.allclose(out[0][1].sum(1), 1.0)


def test_functions_are_deterministic_given_the_seed():
    wave = np.tile(tone(amp=0.3, seconds=0.25), (4, 1))
    y = np.eye(4, dtype=np.float32)
    other = np.array([4, 3], np.int32)
    for fn in (W.gain, W.time_shift, W.gaussian_noise, W.pink_noise_snr, W.time_stretch):
        first, again = npy(fn(wave, SEED, 1.0)), npy(fn(wave, SEED, 1.0))
        np.testing.assert_array_equal(first, again, err_msg=fn.__name__)
        assert not np.allclose(first, npy(fn(wave, other, 1.0))), fn.__name__
    for fn in (M.mixup, M.cutmix):
        first, again = npy(fn(wave, y, SEED, 1.0, 1.0)[1]), npy(fn(wave, y, SEED, 1.0, 1.0)[1])
        np.testing.assert_array_equal(first, again, err_msg=fn.__name__)


def test_layers_work_in_a_tf_data_map_and_only_in_training():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("a layer called in tf.data is TensorFlow's (the pipeline calls `augment`)")
    x = np.random.rand(12, 400).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    mixup, wave_aug = A.MixUp(1.0, 0.5, seed=5), A.WaveAugment(gain_prob=1.0, seed=6)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(6)
    train = ds.map(lambda a, b: mixup((wave_aug(a, training=True), b), training=True))
    batches = [(a.numpy(), b.numpy()) for a, b in train]
    assert len(batches) == 2 and not np.allclose(batches[0][0], x[:6])
    assert not np.allclose(batches[0][1], y[:6]) and np.allclose(batches[0][1].sum(1), 1.0)
    evaluation = [a.numpy() for a, _ in ds.map(lambda a, b: mixup((a, b), training=False))]
    np.testing.assert_array_equal(np.concatenate(evaluation), x)
