"""Windows of recordings (counts, ids, padding, overlap, context, shifts), smoothing, aggregation,
and the checks of the infer settings."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from birdtpu.config import load_config
from birdtpu.errors import ConfigError
from birdtpu.infer.postprocess import aggregate, smooth
from birdtpu.infer.windows import window_count, windows
from birdtpu.rowid import row_ids


def ramp(n):
    return np.arange(1, n + 1, dtype=np.float32)


def test_five_second_windows_of_a_minute_end_at_5_to_60():
    batch, ends = windows(ramp(60 * 100), 100, 5.0)
    assert batch.shape == (12, 500)
    assert ends == list(range(5, 65, 5))
    assert (
        row_ids("scape", ends)[:2] == ["scape_5", "scape_10"]
        and row_ids("scape", ends)[-1] == "scape_60"
    )
    np.testing.assert_array_equal(batch.reshape(-1), ramp(6000))


def test_the_last_partial_window_is_zero_padded():
    batch, ends = windows(ramp(1234), 100, 5.0)  # 12.34 s
    assert ends == [5, 10, 15] and batch.shape == (3, 500)
    np.testing.assert_array_equal(batch[2, :234], ramp(1234)[1000:])
    assert not batch[2, 234:].any()


def test_a_short_file_gives_one_padded_window():
    batch, ends = windows(ramp(30), 100, 5.0)  # 0.3 s
    assert ends == [5] and batch.shape == (1, 500)
    np.testing.assert_array_equal(batch[0, :30], ramp(30))
    assert not batch[0, 30:].any()


def test_a_ten_minute_file_is_one_copy_not_one_per_window():
    wave = np.ones(600 * 32000, np.float32)
    batch, ends = windows(wave, 32000, 5.0)
    assert batch.shape == (120, 160000) and ends[-1] == 600
    assert batch.base is not None and not batch.flags.writeable  # a strided view
    assert np.shares_memory(batch[0], batch[-1]) is False and batch[5].sum() == 160000


def test_overlapping_windows_step_by_the_hop():
    batch, ends = windows(ramp(1000), 100, 5.0, hop=2.5)
    assert ends == [5, 7.5, 10] and row_ids("x", ends) == ["x_5", "x_7.5", "x_10"]
    np.testing.assert_array_equal(batch[1], ramp(1000)[250:750])


def test_context_comes_from_the_neighbours_and_zeros_beyond_the_ends():
    wave = ramp(1500)  # three 5-s windows at 100 Hz
    batch, ends = windows(wave, 100, 5.0, context=1.0)
    assert batch.shape == (3, 700) and ends == [5, 10, 15]
    np.testing.assert_array_equal(batch[1], wave[400:1100])
    assert not batch[0, :100].any() and np.array_equal(batch[0, 100:], wave[:600])
    assert not batch[2, -100:].any() and np.array_equal(batch[2, :-100], wave[900:])


def test_context_of_an_odd_number_of_samples_keeps_the_width():
    batch, _ = windows(ramp(2000), 7, 5.0, context=0.5 / 7)  # one extra sample in all
    assert batch.shape[1] == 36


def test_shifted_windows_keep_their_ids_and_move_the_audio():
    wave = ramp(1000)
    base, ends = windows(wave, 100, 5.0)
    late, late_ends = windows(wave, 100, 5.0, shift=1.0)
    early, _ = windows(wave, 100, 5.0, shift=-1.0)
    assert late_ends == ends
    np.testing.assert_array_equal(late[0], wave[100:600])
    assert not late[1, -100:].any()
    assert not early[0, :100].any() and np.array_equal(early[1], wave[400:900])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 5000),
    rate=st.sampled_from([7, 100, 441]),
    seconds=st.floats(0.2, 6.0),
    hop_share=st.floats(0.2, 1.0),
    context=st.floats(0.0, 2.0),
)
def test_windows_cover_every_sample_at_its_place(n, rate, seconds, hop_share, context):
    size, step = int(round(seconds * rate)), int(round(seconds * hop_share * rate))
    if size < 1 or step < 1:
        return
    wave = ramp(n)
    batch, ends = windows(wave, rate, seconds, hop=seconds * hop_share, context=context)
    ctx = int(round(context * rate))
    assert len(batch) == len(ends) == window_count(n, size, step)
    assert batch.shape[1] == size + int(round(2 * context * rate))
    covered = np.zeros(n, bool)
    for i, row in enumerate(batch):
        start = i * step - ctx
        pos = start + np.arange(batch.shape[1])
        inside = (pos >= 0) & (pos < n)
        np.testing.assert_array_equal(row[inside], wave[pos[inside]])
        assert not row[~inside].any()
        covered[pos[inside]] = True
    assert covered.all()


def test_smoothing_averages_neighbours_and_renormalises_at_the_ends():
    probs = np.zeros((5, 2), np.float32)
    probs[2, 0] = 1.0
    out = smooth(probs, [0.25, 0.5, 0.25])
    np.testing.assert_allclose(out[:, 0], [0, 0.25, 0.5, 0.25, 0])
    edge = smooth(np.eye(3, dtype=np.float32)[:, :1], [1.0, 2.0, 1.0])
    np.testing.assert_allclose(edge[:, 0], [2 / 3, 0.25, 0])  # first row: (2 * 1 + 1 * 0) / 3
    const = np.full((4, 3), 0.7, np.float32)
    np.testing.assert_allclose(smooth(const, [1, 3, 5, 3, 1]), const, rtol=1e-6)
    assert smooth(probs, []) is probs


def test_aggregation_keeps_one_row():
    probs = np.array([[0.1, 0.9], [0.5, 0.3]], np.float32)
    np.testing.assert_allclose(aggregate(probs, "max"), [[0.5, 0.9]])
    np.testing.assert_allclose(aggregate(probs, "mean"), [[0.3, 0.6]])


@pytest.mark.parametrize(
    "override, key",
    [
        ("infer.smooth=[0.5, 0.5]", "infer.smooth"),
        ("infer.smooth=[1, -1, 1]", "infer.smooth"),
        ("infer.hop_seconds=6", "infer.hop_seconds"),
        ("infer.tta_shifts=[-5, 1]", "infer.tta_shifts"),
        ("infer.aggregate=median", "infer.aggregate"),
    ],
)
def test_bad_infer_settings_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, [override])


def test_infer_settings_load_from_overrides():
    cfg = load_config(
        None,
        [
            "infer.tta_shifts=[-1, 1]",
            "infer.smooth=[0.25, 0.5, 0.25]",
            "infer.aggregate=max",
            "infer.hop_seconds=2.5",
        ],
    )
    assert cfg.infer.tta_shifts == [-1.0, 1.0] and cfg.infer.smooth == [0.25, 0.5, 0.25]
    assert cfg.infer.aggregate == "max" and cfg.infer.hop_seconds == 2.5
