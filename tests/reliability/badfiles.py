"""Writers of bad and odd input files for the reliability tests: tiny, deterministic, in a given folder."""

from __future__ import annotations

import os
import wave

import numpy as np
import soundfile as sf

from birdtpu.data.audio import write_audio


def tone(seconds: float, rate: int, freq: float = 1000.0, channels: int = 1) -> np.ndarray:
    """A sine with a little noise (frames, or frames x channels), amplitude about 0.3."""
    t = np.arange(int(round(seconds * rate))) / rate
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(0).standard_normal(
        len(t)
    )
    wave_ = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
    return wave_.astype(np.float32)


def _cut(path: str, fraction: float) -> None:
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:
        fh.write(data[: int(len(data) * fraction)])


def write_bad(folder: str, seconds: float = 2.0) -> dict[str, str]:
    """Recordings that must be skipped -> the start of the reason they get (audio.AudioError kinds)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    out = {}
    with open(os.path.join(folder, "corrupt.ogg"), "wb") as fh:
        fh.write(rng.bytes(4000))
    out["corrupt.ogg"] = "unreadable"
    for name, reason in (("truncated_ogg.ogg", "truncated"), ("truncated_wav.wav", "truncated")):
        write_audio(
            os.path.join(folder, name), (0.3 * rng.standard_normal(int(seconds * 16000))), 16000
        )
        _cut(os.path.join(folder, name), 0.5)
        out[name] = reason
    open(os.path.join(folder, "empty.wav"), "wb").close()
    out["empty.wav"] = "empty file (0 bytes)"
    sf.write(os.path.join(folder, "no_samples.wav"), np.zeros(0, np.float32), 16000)
    out["no_samples.wav"] = "empty (no samples)"
    sf.write(
        os.path.join(folder, "all_zero.flac"), np.zeros(int(seconds * 16000), np.float32), 16000
    )
    out["all_zero.flac"] = "all samples are zero"
    nan = tone(seconds, 16000)
    nan[100:110] = np.nan
    sf.write(os.path.join(folder, "nan.wav"), nan, 16000, subtype="FLOAT")
    out["nan.wav"] = "contains NaN or infinite samples"
    return out


def write_odd(folder: str, seconds: float = 2.0) -> dict[str, tuple[int, int]]:
    """Valid but unusual recordings -> (sample rate, channels): 8-bit, 24-bit, 6-channel, 8 kHz, 96 kHz.

    The 8-bit file is written with the standard library's `wave` (unsigned 8-bit PCM, as old
    recorders write it); the others with soundfile.
    """
    os.makedirs(folder, exist_ok=True)
    out = {}
    pcm8 = np.round(tone(seconds, 22050) * 127 + 128).astype(np.uint8)
    with wave.open(os.path.join(folder, "pcm8.wav"), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(1)
        fh.setframerate(22050)
        fh.writeframes(pcm8.tobytes())
    out["pcm8.wav"] = (22050, 1)
    sf.write(os.path.join(folder, "pcm24.wav"), tone(seconds, 48000), 48000, subtype="PCM_24")
    out["pcm24.wav"] = (48000, 1)
    sf.write(
        os.path.join(folder, "six_channel.wav"),
        tone(seconds, 44100, channels=6),
        44100,
        subtype="PCM_16",
    )
    out["six_channel.wav"] = (44100, 6)
    write_audio(os.path.join(folder, "rate8k.ogg"), tone(seconds, 8000, freq=800), 8000)
    out["rate8k.ogg"] = (8000, 1)
    write_audio(os.path.join(folder, "rate96k.flac"), tone(seconds, 96000), 96000, subtype="PCM_24")
    out["rate96k.flac"] = (96000, 1)
    return out


def write_metadata(
    root: str, rows: list[list[str]], header=("primary_label", "secondary_labels", "filename")
) -> str:
    """`<root>/train_metadata.csv` with `rows` (strings written as they are, one line each); returns its path."""
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, "train_metadata.csv")
    with open(path, "w") as fh:
        fh.write(",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    return path
