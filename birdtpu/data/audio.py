"""Decoding recordings on the host: ogg/vorbis, opus, mp3, flac, wav at any rate, resampled by soxr.

soundfile (libsndfile 1.1+ reads mp3) decodes by default. tensorflow-io is an optional decoder:
used where asked (`decoder="tfio"`), or under `auto` for a format the installed libsndfile lacks,
and only where it loads. Remote paths (`gs://`) are read through `tf.io.gfile`.

An unusable recording raises `AudioError` with the file and a reason that starts with its kind,
so a shard build can skip and count it: `unreadable (...)`, `empty file (0 bytes)`,
`empty (no samples)`, `truncated (...)`, `contains NaN or infinite samples`,
`all samples are zero`. An MP3 without a Xing, Info or VBRI frame is judged by its last frame, not
by libsndfile's estimate of its length (`birdtpu.data.mp3`).
"""

from __future__ import annotations

import functools
import io
import os
import re

import numpy as np
import soundfile as sf
import soxr

from birdtpu import fs
from birdtpu.data.mp3 import counts_frames, read_mpeg
from birdtpu.errors import DataError

AUDIO_EXTENSIONS = (".ogg", ".oga", ".flac", ".wav", ".mp3", ".opus")
DECODERS = ("auto", "soundfile", "tfio")
_SHORTFALL = 0.02  # decoded this much less than the header promises: truncated
_WRITE_FORMATS = {
    "ogg": ("OGG", "VORBIS"),
    "oga": ("OGG", "VORBIS"),
    "opus": ("OGG", "OPUS"),
    "flac": ("FLAC", "PCM_16"),
    "wav": ("WAV", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


class AudioError(DataError):
    """A recording that cannot be used: unreadable, empty, truncated, all zeros or not finite."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # picklable across worker processes
        return type(self), (self.path, self.reason)


@functools.lru_cache(maxsize=None)
def tfio_error() -> str | None:
    """None where tensorflow-io loads with this TensorFlow, else why it does not."""
    try:
        import tensorflow as tf
        import tensorflow_io as tfio

        probe = io.BytesIO()
        sf.write(probe, np.zeros(8, np.int16), 8000, format="WAV", subtype="PCM_16")
        tfio.audio.decode_wav(
            tf.constant(probe.getvalue()), dtype=tf.int16
        )  # runs an op of its library
    except Exception as err:  # ImportError, NotImplementedError, missing .so symbols
        return f"{type(err).__name__}: {_reason(err)}"
    return None


def _reason(err: Exception) -> str:
    """The first line of an error, without the path libsndfile or TensorFlow put in front."""
    text = (str(err).strip().splitlines() or [""])[0]
    text = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", text)  # tensorflow-io op prefix
    text = re.sub(r"^Error (opening|reading) '.*?': ", "", text)
    text = re.sub(r"^Error : ", "", text).strip()
    if (
        "Format not recognised" in text
        or "not a regular file" in text
        or "unknown file type" in text
    ):
        return "not a recognised audio format"
    return text[:200] or type(err).__name__


def _source(path: str):
    """A local path, or the bytes of a remote file; missing and zero-length files raise AudioError."""
    if fs.is_remote(path):
        if not fs.exists(path):
            raise AudioError(path, "unreadable (file not found)")
        data = fs.read_bytes(path)
        if not data:
            raise AudioError(path, "empty file (0 bytes)")
        return io.BytesIO(data)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise AudioError(path, "unreadable (file not found)") from None
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    return path


def _use_tfio(path: str, decoder: str) -> bool:
    """Whether tensorflow-io decodes `path`; DataError where it is asked for and does not load."""
    if decoder not in DECODERS:
        raise DataError(f"decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
    if decoder == "soundfile":
        return False
    if decoder == "tfio":
        if tfio_error():
            raise DataError(
                f"tensorflow-io does not load here ({tfio_error()}); use the soundfile decoder "
                "(shards.decoder: soundfile)"
            )
        return True
    lacking = path.lower().endswith(".mp3") and "MP3" not in sf.available_formats()
    return lacking and tfio_error() is None


def audio_info(path: str, decoder: str = "auto") -> tuple[int, float]:
    """(sample rate, duration in seconds) from the header, without decoding."""
    source = _source(path)
    if _use_tfio(path, decoder):
        tensor = _tfio_tensor(path)
        return int(tensor.rate), int(tensor.shape[0]) / int(tensor.rate)
    try:
        info = sf.info(source)
    except Exception as err:  # libsndfile raises several types for unreadable files
        raise AudioError(path, f"unreadable ({_reason(err)})") from None
    return int(info.samplerate), float(info.duration)


def _frames(max_seconds: float | None, rate: int, total: int) -> int:
    return total if max_seconds is None else min(total, int(round(max_seconds * rate)))


def _read_soundfile(path: str, source, max_seconds: float | None) -> tuple[np.ndarray, int, int]:
    """(float32 frames x channels, rate, frames the header promises for this read)."""
    try:
        with sf.SoundFile(source) as f:
            rate = int(f.samplerate)
            expected = _frames(max_seconds, rate, int(f.frames))
            data = f.read(
                frames=-1 if max_seconds is None else expected, dtype="float32", always_2d=True
            )
    except Exception as err:
        raise AudioError(path, f"unreadable ({_reason(err)})") from None
    return data, rate, expected


def _tfio_tensor(path: str):
    import tensorflow_io as tfio

    try:
        return tfio.audio.AudioIOTensor(path)
    except Exception as err:
        raise AudioError(path, f"unreadable (tensorflow-io: {_reason(err)})") from None


def _read_tfio(path: str, max_seconds: float | None) -> tuple[np.ndarray, int, int]:
    tensor = _tfio_tensor(path)
    try:
        rate = int(tensor.rate)
        expected = _frames(max_seconds, rate, int(tensor.shape[0]))
        data = tensor[:expected].numpy()
    except Exception as err:
        raise AudioError(path, f"unreadable (tensorflow-io: {_reason(err)})") from None
    return _to_float(data), rate, expected


def _to_float(data: np.ndarray) -> np.ndarray:
    """Integer PCM of any width (tensorflow-io keeps the file's) as float32 in [-1, 1]."""
    if data.dtype == np.uint8:
        return ((data.astype(np.float32) - 128.0) / 128.0).reshape(len(data), -1)
    if np.issubdtype(data.dtype, np.integer):
        return (data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))).reshape(
            len(data), -1
        )
    return data.astype(np.float32).reshape(len(data), -1)


def container_problem(source) -> str | None:
    """Why an Ogg, RIFF/WAVE or MP3 file (a path or a binary file object) is cut short, or None.

    Ogg: the last page must be complete and mark the end of the stream. WAVE: the data chunk
    must hold the bytes its header declares. MP3 without a frame count (Xing/Info/VBRI): the last
    frame must be complete. Other formats are checked by decoded length (see `counts_frames`).
    """
    fh = fs.open(source) if isinstance(source, str) else source
    try:
        fh.seek(0)
        magic = fh.read(12)
        if magic[:4] == b"OggS":
            return _ogg_problem(fh)
        if magic[:4] == b"RIFF" and magic[8:12] == b"WAVE":
            return _wave_problem(fh)
        frames = read_mpeg(fh)
        return frames[1] if frames is not None and not frames[0] else None
    finally:
        if isinstance(source, str):
            fh.close()
        else:
            fh.seek(0)


def _ogg_problem(fh) -> str | None:
    fh.seek(0, 2)
    size = fh.tell()
    pos, flags = 0, 0
    while pos < size:
        fh.seek(pos)
        head = fh.read(27)
        if head[:4] != b"OggS":  # trailing bytes after the last page: judge that page
            break
        table = fh.read(head[26]) if len(head) == 27 else b""
        end = pos + 27 + len(table) + sum(table)
        if len(head) < 27 or len(table) < head[26] or end > size:
            return f"truncated (last Ogg page ends at byte {end} of {size})"
        pos, flags = end, head[5]
    if not flags & 0x04:
        return f"truncated (no end-of-stream Ogg page in {size} bytes)"
    return None


def _wave_problem(fh) -> str | None:
    fh.seek(0, 2)
    size = fh.tell()
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        chunk = fh.read(8)
        length = int.from_bytes(chunk[4:], "little")
        if chunk[:4] == b"data":
            if (
                length not in (0, 0xFFFFFFFF) and pos + 8 + length > size
            ):  # streaming writers leave 0 or -1
                return f"truncated (data chunk holds {size - pos - 8} of {length} bytes)"
            return None
        pos += 8 + length + (length & 1)
    return None


def load_audio(
    path: str,
    sample_rate: int | None = None,
    channel: int | None = None,
    max_seconds: float | None = None,
    check: bool = True,
    decoder: str = "auto",
) -> tuple[np.ndarray, int]:
    """Decode `path` to float32 mono in [-1, 1], resampled to `sample_rate` (None keeps the file's).

    `channel=None` averages the channels, an int picks one. `max_seconds` decodes only the start.
    With `check`, a truncated, empty, all-zero or non-finite recording raises `AudioError`.
    `decoder` is `auto`, `soundfile` or `tfio` (see the module docstring).
    """
    source = _source(path)
    tfio = _use_tfio(path, decoder)
    if check and (reason := container_problem(source)):
        raise AudioError(path, reason)
    data, rate, expected = (
        _read_tfio(path, max_seconds) if tfio else _read_soundfile(path, source, max_seconds)
    )
    if check and expected > 0 and len(data) < expected * (1 - _SHORTFALL) and counts_frames(source):
        raise AudioError(
            path,
            f"truncated (decoded {len(data) / rate:.2f} s of the {expected / rate:.2f} s "
            "in its header)",
        )
    if channel is None:
        wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    elif 0 <= channel < data.shape[1]:
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
    if sample_rate and sample_rate != rate and wave.size:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ")
        rate = sample_rate
    return np.ascontiguousarray(wave, dtype=np.float32), rate


def check_audio(path: str, decoder: str = "auto") -> str | None:
    """The reason `path` is unusable, or None where it decodes to finite, non-silent audio."""
    try:
        load_audio(path, decoder=decoder)
    except AudioError as err:
        return err.reason
    return None


def write_audio(path: str, wave: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write float audio (frames, or frames x channels); the format follows the extension, any case.

    .ogg/.oga Vorbis, .opus, .flac, .wav (16-bit unless `subtype`, e.g. PCM_24, PCM_U8, FLOAT),
    .mp3 (libsndfile 1.1+).
    """
    ext = path.rsplit(".", 1)[-1].lower()
    if ext not in _WRITE_FORMATS:
        raise DataError(
            f"{path}: cannot write .{ext} audio (use {', '.join('.' + e for e in _WRITE_FORMATS)})"
        )
    container, default = _WRITE_FORMATS[ext]
    if container not in sf.available_formats():
        raise DataError(
            f"{path}: this libsndfile ({sf.__libsndfile_version__}) cannot write {container}"
        )
    wave = np.clip(wave, -1.0, 1.0)
    channels = 1 if wave.ndim == 1 else wave.shape[1]
    with sf.SoundFile(
        path, "w", sample_rate, channels, format=container, subtype=subtype or default
    ) as fh:
        for i in range(0, len(wave), sample_rate):  # one long Vorbis write crashes libsndfile 1.2.2
            fh.write(wave[i : i + sample_rate])
