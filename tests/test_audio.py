import os

import numpy as np
import pytest
import soundfile as sf

from birdtpu.data.audio import AudioError, audio_info, check_audio, load_audio, write_audio
from conftest import REAL_CLIPS


@pytest.mark.parametrize("name, rate", [("2021-B32-0415_05-11.wav", 22050), ("363.wav", 32000)])
def test_real_clips_decode_and_resample(name, rate):
    path = os.path.join(REAL_CLIPS, name)
    assert audio_info(path)[0] == rate
    native, sr = load_audio(path)
    assert sr == rate and native.dtype == np.float32 and np.abs(native).max() <= 1.0
    wave, sr = load_audio(path, 32000)
    assert sr == 32000
    assert abs(len(wave) - len(native) * 32000 / rate) <= 2
    short, _ = load_audio(path, max_seconds=0.5)
    assert len(short) == int(round(0.5 * rate))


@pytest.mark.parametrize("ext", ["ogg", "flac", "wav", "OGG"])
def test_formats_round_trip(tmp_path, ext):
    t = np.arange(22050) / 22050
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    path = str(tmp_path / f"tone.{ext}")
    write_audio(path, tone, 22050)
    wave, sr = load_audio(path, 16000)
    assert sr == 16000 and abs(len(wave) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(wave))
    assert abs(np.argmax(spectrum) * 16000 / len(wave) - 1000) < 5


def test_stereo_mix_and_channel(tmp_path):
    path = str(tmp_path / "stereo.wav")
    left, right = np.full(1000, 0.5), np.full(1000, -0.25)
    sf.write(path, np.stack([left, right], 1), 8000, subtype="FLOAT")
    assert np.allclose(load_audio(path)[0], 0.125)
    assert np.allclose(load_audio(path, channel=1)[0], -0.25)
    with pytest.raises(AudioError, match="has 2 channel"):
        load_audio(path, channel=2)


def test_bad_files_are_named_with_reason(tmp_path):
    cases = {}
    cases["garbage.ogg"] = lambda p: open(p, "wb").write(b"not audio at all" * 10)
    cases["empty.wav"] = lambda p: sf.write(p, np.zeros(0), 8000)
    cases["zeros.wav"] = lambda p: sf.write(p, np.zeros(800), 8000)
    cases["nan.wav"] = lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 100), 8000, subtype="FLOAT")
    reasons = {}
    for name, make in cases.items():
        path = str(tmp_path / name)
        make(path)
        with pytest.raises(AudioError) as err:
            load_audio(path)
        assert str(err.value).startswith(path)
        reasons[name] = check_audio(path)
    assert reasons["garbage.ogg"].startswith("unreadable")
    assert reasons["empty.wav"] == "empty (no samples)"
    assert reasons["zeros.wav"] == "all samples are zero"
    assert reasons["nan.wav"] == "contains NaN or infinite samples"
    assert check_audio(os.path.join(REAL_CLIPS, "363.wav")) is None
