"""Decoding recordings on the host: soundfile (libsndfile) for ogg/flac/wav/mp3, soxr to resample.

Every path goes through `tf.io.gfile` only where it is remote (`gs://`); local files are read
directly. Unusable recordings raise `AudioError` with the file and the reason, so a shard build
can skip and count them.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

from birdtpu.errors import DataError

AUDIO_EXTENSIONS = (".ogg", ".oga", ".flac", ".wav", ".mp3", ".opus")


class AudioError(DataError):
    """A recording that cannot be used: unreadable, empty, all zeros or not finite."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _open(path: str):
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as fh:
            return io.BytesIO(fh.read())
    return path


def audio_info(path: str) -> tuple[int, float]:
    """(sample rate, duration in seconds) from the header, without decoding."""
    try:
        info = sf.info(_open(path))
    except Exception as err:  # libsndfile raises several types for unreadable files
        raise AudioError(path, f"unreadable ({_reason(err)})") from None
    return int(info.samplerate), float(info.duration)


def _reason(err: Exception) -> str:
    return str(err).strip().splitlines()[0][:200] or type(err).__name__


def load_audio(
    path: str,
    sample_rate: int | None = None,
    channel: int | None = None,
    max_seconds: float | None = None,
    check: bool = True,
) -> tuple[np.ndarray, int]:
    """Decode `path` to float32 mono in [-1, 1], resampled to `sample_rate` (None keeps the file's).

    `channel=None` averages the channels, an int picks one. `max_seconds` decodes only the start.
    With `check`, an empty, all-zero or non-finite recording raises `AudioError`.
    """
    try:
        with sf.SoundFile(_open(path)) as f:
            frames = -1 if max_seconds is None else int(round(max_seconds * f.samplerate))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
            rate = int(f.samplerate)
    except Exception as err:
        raise AudioError(path, f"unreadable ({_reason(err)})") from None
    if channel is None:
        wave = data.mean(axis=1)
    elif channel < data.shape[1]:
        wave = data[:, channel]
    else:
        raise AudioError(path, f"has {data.shape[1]} channel(s), channel {channel} asked for")
    if check:
        if wave.size == 0:
            raise AudioError(path, "empty (no samples)")
        if not np.isfinite(wave).all():
            raise AudioError(path, "contains NaN or infinite samples")
        if not np.any(wave):
            raise AudioError(path, "all samples are zero")
    if sample_rate and sample_rate != rate:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ").astype(np.float32)
        rate = sample_rate
    return np.ascontiguousarray(wave, dtype=np.float32), rate


def check_audio(path: str) -> str | None:
    """The reason `path` is unusable, or None where it decodes to finite, non-silent audio."""
    try:
        load_audio(path)
    except AudioError as err:
        return err.reason
    return None


def write_audio(path: str, wave: np.ndarray, sample_rate: int) -> None:
    """Write float audio; the format follows the extension (.ogg is Vorbis)."""
    fmt = {"ogg": ("OGG", "VORBIS"), "flac": ("FLAC", "PCM_16"), "wav": ("WAV", "PCM_16")}
    ext = path.rsplit(".", 1)[-1].lower()
    if ext not in fmt:
        raise DataError(f"{path}: cannot write .{ext} audio (use .ogg, .flac or .wav)")
    container, subtype = fmt[ext]
    sf.write(path, np.clip(wave, -1.0, 1.0), sample_rate, format=container, subtype=subtype)
