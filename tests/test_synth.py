import os

import numpy as np
import pandas as pd
import soundfile as sf

from birdtpu.config import SynthConfig
from birdtpu.data.catalog import parse_label_list
from birdtpu.data.synth import SHAPES, make_species, render_call, write_dataset


def small(**kw):
    return SynthConfig(
        **{
            "num_species": 4,
            "clips_per_species": 3,
            "min_seconds": 1.0,
            "max_seconds": 2.0,
            "num_soundscapes": 1,
            "soundscape_seconds": 12.0,
            "secondary_prob": 0.5,
            **kw,
        }
    )


def test_species_differ_in_shape_and_band():
    species = make_species(8, seed=1)
    assert {sp.shape for sp in species} == set(SHAPES)
    assert len({sp.code for sp in species}) == 8
    for sp in species:  # the call's energy lies in the species' band
        call = render_call(sp, 32000, np.random.default_rng(0))
        spec = np.abs(np.fft.rfft(call)) ** 2
        freqs = np.fft.rfftfreq(len(call), 1 / 32000)
        lo, hi = (
            (sp.f_low / 2, sp.f_high)
            if sp.shape == "harmonic"
            else (sp.f_low * 0.9, sp.f_high * 1.1)
        )
        in_band = spec[(freqs >= lo) & (freqs <= hi)].sum() / spec.sum()
        assert in_band > 0.6, (sp, in_band)


def test_dataset_layout_and_determinism(tmp_path):
    meta = write_dataset(str(tmp_path / "a"), small(), log=lambda *_: None)
    again = write_dataset(str(tmp_path / "b"), small(), log=lambda *_: None)
    other = write_dataset(str(tmp_path / "c"), small(seed=8), log=lambda *_: None)
    pd.testing.assert_frame_equal(meta, again)
    assert len(meta) == 12 and meta.primary_label.nunique() == 4
    rates = set()
    for name in meta.filename:
        a, rate = sf.read(tmp_path / "a" / "train_audio" / name)
        b, _ = sf.read(tmp_path / "b" / "train_audio" / name)
        np.testing.assert_array_equal(a, b)
        assert 1.0 <= len(a) / rate <= 2.0 + 1e-3 and np.abs(a).max() > 0.1
        rates.add(rate)
    assert rates <= {22050, 32000, 44100} and len(rates) > 1
    c, _ = sf.read(tmp_path / "c" / "train_audio" / other.filename[0])
    a, _ = sf.read(tmp_path / "a" / "train_audio" / meta.filename[0])
    assert len(a) != len(c) or not np.allclose(a, c)
    secondary = [parse_label_list(v, "x") for v in meta.secondary_labels]
    assert any(secondary)
    assert all(p not in s for p, s in zip(meta.primary_label, secondary))


def test_soundscape_truth_matches_events(tmp_path):
    root = tmp_path / "d"
    write_dataset(str(root), small(), log=lambda *_: None)
    truth = pd.read_csv(root / "soundscape_labels.csv")
    events = pd.read_csv(root / "soundscape_events.csv")
    assert list(truth.row_id) == ["soundscape_000_5", "soundscape_000_10", "soundscape_000_12"]
    for _, e in events.iterrows():
        window = int(e.start // 5)
        assert truth.loc[window, e.species] == 1
    assert truth.iloc[:, 1:].to_numpy().sum() > 0
    wave, rate = sf.read(root / "soundscapes" / "soundscape_000.ogg")
    assert rate == 32000 and abs(len(wave) / rate - 12.0) < 0.01
    sample = pd.read_csv(root / "sample_submission.csv")
    assert list(sample.columns) == list(truth.columns) and len(sample) == len(truth)
    assert os.path.exists(root / "train_metadata.csv")
