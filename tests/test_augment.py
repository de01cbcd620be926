import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from test_frontend import check_layer

from birdtpu.config import AugmentConfig
from birdtpu.layers import augment as A

RATE = 16000
SEED = tf.constant([3, 4])


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
        draws = A.beta(SEED, [20000], alpha).numpy()
        assert stats.kstest(draws, stats.beta(alpha, alpha).cdf).pvalue > 1e-3
    compiled = tf.function(lambda s: A.beta(s, [64], 0.4), jit_compile=True)(SEED).numpy()
    assert compiled.shape == (64,) and ((compiled >= 0) & (compiled <= 1)).all()


def test_partners_are_a_permutation_without_self():
    for seed in range(5):
        p = A.partners(tf.constant([seed, 1]), 16).numpy()
        assert sorted(p) == list(range(16)) and not (p == np.arange(16)).any()


def test_mixup_draws_one_lambda_per_example():
    x = tf.constant(np.eye(64, dtype=np.float32))  # example i: unit vector i
    y = tf.constant(np.eye(4, dtype=np.float32)[np.arange(64) % 4])
    mixed_x, mixed_y = A.mixup(x, y, SEED, prob=1.0, alpha=0.5)
    mx = mixed_x.numpy()
    lam = mx[np.arange(64), np.arange(64)]  # weight kept on itself
    partner = np.argmax(mx - np.diag(lam), axis=1)
    assert (lam >= 0.5 - 1e-6).all() and len(np.unique(np.round(lam, 4))) > 30
    np.testing.assert_allclose(mx[np.arange(64), partner], 1 - lam, atol=1e-6)
    np.testing.assert_allclose(
        mixed_y.numpy(),
        lam[:, None] * y.numpy() + (1 - lam[:, None]) * y.numpy()[partner],
        atol=1e-6,
    )
    same_x, same_y = A.mixup(x, y, SEED, prob=0.0, alpha=0.5)
    np.testing.assert_array_equal(same_x.numpy(), x.numpy())
    np.testing.assert_array_equal(same_y.numpy(), y.numpy())


def test_mixup_labels_by_max_keep_both_labels_whole():
    x = tf.constant(np.eye(32, dtype=np.float32))
    y = tf.constant(np.eye(8, dtype=np.float32)[np.arange(32) % 8] * 0.9)
    mixed_x, mixed_y = A.mixup(x, y, SEED, prob=0.5, alpha=1.0, labels="max")
    mx, my = mixed_x.numpy(), mixed_y.numpy()
    mixed = ~np.isclose(np.diag(mx), 1.0)
    assert 5 < mixed.sum() < 27
    partner = np.argmax(mx - np.diag(np.diag(mx)), axis=1)
    np.testing.assert_array_equal(
        my[mixed], np.maximum(y.numpy()[mixed], y.numpy()[partner[mixed]])
    )
    np.testing.assert_array_equal(my[~mixed], y.numpy()[~mixed])


@pytest.mark.parametrize("shape", [(32, 400), (32, 6, 50, 1)])
def test_cutmix_pastes_one_time_segment_per_example(shape):
    idx = np.arange(32, dtype=np.float32)
    x = np.broadcast_to(
        idx.reshape((32,) + (1,) * (len(shape) - 1)), shape
    ).copy()  # example i is all i
    y = np.eye(32, dtype=np.float32)
    mixed_x, mixed_y = A.cutmix(tf.constant(x), tf.constant(y), SEED, prob=1.0, alpha=2.5)
    mx, my = mixed_x.numpy(), mixed_y.numpy()
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
    out = A.gain(tf.constant(wave), SEED, 0.5, (-6.0, 6.0)).numpy()
    ratio_db = 20 * np.log10(np.abs(out).max(1) / np.abs(wave).max(1))
    changed = ~np.isclose(ratio_db, 0.0, atol=1e-4)
    assert 16 < changed.sum() < 48 and (np.abs(ratio_db) <= 6.0 + 1e-3).all()
    assert len(np.unique(np.round(ratio_db[changed], 3))) == changed.sum()


def test_noise_levels():
    wave = np.tile(tone(amp=0.3), (32, 1))
    fixed = A.gaussian_noise(tf.constant(np.zeros_like(wave)), SEED, 1.0, (0.01, 0.02)).numpy()
    assert ((fixed.std(1) > 0.0095) & (fixed.std(1) < 0.0205)).all()
    for fn in (A.gaussian_noise_snr, A.pink_noise_snr):
        out = fn(tf.constant(wave), SEED, 1.0, (10.0, 20.0)).numpy()
        snr = 10 * np.log10((wave**2).mean(1) / ((out - wave) ** 2).mean(1))
        assert (snr > 10 - 1e-3).all() and (snr < 20 + 1e-3).all() and snr.std() > 1


@pytest.mark.parametrize("color, slope", [("white", 0.0), ("pink", -1.0)])
def test_noise_has_its_colour_and_differs_per_example(color, slope):
    noise = A.noise(SEED, 8, 2**15, color).numpy()
    power = (np.abs(np.fft.rfft(noise, axis=1)) ** 2).mean(0)
    k = np.arange(16, len(power) - 1)
    assert abs(np.polyfit(np.log10(k), np.log10(power[k]), 1)[0] - slope) < 0.15
    np.testing.assert_allclose(np.sqrt((noise**2).mean(1)), 1.0, rtol=1e-3)
    corr = np.corrcoef(noise)[np.triu_indices(8, 1)]
    assert np.abs(corr).max() < 0.2  # no two examples share their noise


def shifted(wave, k, mode):
    out = np.roll(wave, k)
    if mode == "pad":
        out[:k] = 0 if k > 0 else out[:k]
        out[len(out) + k :] = 0 if k < 0 else out[len(out) + k :]
    return out


@pytest.mark.parametrize("mode", ["roll", "pad"])
def test_time_shift(mode):
    wave = np.tile(np.arange(1, 101, dtype=np.float32), (16, 1))
    out = A.time_shift(tf.constant(wave), SEED, 1.0, 0.3, mode).numpy()
    shifts = [
        [k for k in range(-30, 31) if np.array_equal(row, shifted(wave[0], k, mode))] for row in out
    ]
    assert all(len(k) == 1 for k in shifts) and len({k[0] for k in shifts}) > 8


def test_background_mixes_at_the_snr():
    wave = np.tile(tone(amp=0.3), (16, 1))
    background = np.random.default_rng(0).standard_normal(wave.shape).astype(np.float32)
    out = A.mix_background(
        tf.constant(wave), tf.constant(background), SEED, 1.0, (5.0, 15.0)
    ).numpy()
    added = out - wave
    corr = [np.corrcoef(a, b)[0, 1] for a, b in zip(added, background)]
    snr = 10 * np.log10((wave**2).mean(1) / (added**2).mean(1))
    assert np.min(corr) > 0.999 and (snr > 5 - 1e-3).all() and (snr < 15 + 1e-3).all()


def test_time_stretch_keeps_pitch_and_moves_events():
    burst = tone(1000.0, start=0.25, stop=0.5)
    identity = A.time_stretch(tf.constant(burst[None]), SEED, 1.0, (1.0, 1.0)).numpy()[0]
    np.testing.assert_allclose(identity, burst, atol=1e-5)
    for rate in (0.8, 1.25):
        out = A.time_stretch(tf.constant(burst[None]), SEED, 1.0, (rate, rate)).numpy()[0]
        assert out.shape == burst.shape and abs(peak_hz(out) - 1000.0) <= 2
        begin, end = envelope_edges(out)
        assert abs(begin - 0.25 / rate) < 0.03 and abs(end - 0.5 / rate) < 0.03


@pytest.mark.parametrize("steps", [-2.0, 3.0])
def test_pitch_shift_scales_frequency_and_keeps_timing(steps):
    burst = tone(1000.0, start=0.25, stop=0.75)
    out = A.pitch_shift(tf.constant(burst[None]), SEED, 1.0, (steps, steps)).numpy()[0]
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
    out = np.asarray(check_layer(layer, wave, tmp_path))
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
    mixed_x, mixed_y = check_layer(make(), (x, y), tmp_path)
    assert np.asarray(mixed_x).shape == x.shape and not np.allclose(np.asarray(mixed_x), x)
    assert not np.allclose(np.asarray(mixed_y), y)


def test_background_layer_round_trips_and_compiles(tmp_path):
    rng = np.random.default_rng(1)
    wave, background = rng.random((6, 800), np.float32), rng.random((6, 800), np.float32)
    mixed = np.asarray(
        check_layer(A.BackgroundMix(1.0, (0.0, 10.0), seed=4), (wave, background), tmp_path)
    )
    assert mixed.shape == wave.shape and not np.allclose(mixed, wave)


def test_layers_work_in_a_tf_data_map_and_only_in_training():
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
