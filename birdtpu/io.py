"""File helpers over `tf.io.gfile` (local paths and gs:// alike), with atomic writes."""

from __future__ import annotations

import errno
import json
import os
import uuid

from birdtpu.errors import BirdtpuError

# a full disk, a quota, or a file size limit (RLIMIT_FSIZE); TensorFlow's errors carry only the text
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


class NoSpaceError(BirdtpuError):
    """A write failed for want of space; the message names the file and what to do."""

    def __init__(self, path: str, hint: str = "free space and rerun"):
        super().__init__(path, hint)  # both in args, so the error survives pickling from a worker
        self.path, self.hint = path, hint

    def __str__(self) -> str:
        return f"no space left writing {self.path}: {self.hint}"


def out_of_space(err: BaseException) -> bool:
    """Whether `err` (OSError, h5py's or TensorFlow's error) says the disk or a quota is full."""
    return getattr(err, "errno", None) in _FULL_ERRNOS or any(t in str(err) for t in _FULL_TEXTS)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def exists(path: str) -> bool:
    """Whether `path` exists (local or remote)."""
    if "://" not in path:
        return os.path.exists(path)
    return _gfile().exists(path)


def makedirs(path: str) -> None:
    """Create `path` and its parents (no error if it exists)."""
    if "://" not in path:
        os.makedirs(path, exist_ok=True)
    else:
        _gfile().makedirs(path)


def rmtree(path: str) -> None:
    """Delete a folder and everything in it."""
    _gfile().rmtree(path)


def temp_name(path: str) -> str:
    """A unique sibling name for writing `path` before the rename."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.tmp-{uuid.uuid4().hex[:8]}")


def discard(path: str) -> None:
    """Delete `path` if it exists (a temporary file of a failed write)."""
    try:
        if "://" not in path:
            os.remove(path)
        elif _gfile().exists(path):
            _gfile().remove(path)
    except Exception:  # best effort: the next build removes what is left
        pass


def commit(tmp: str, path: str) -> None:
    """Rename `tmp` over `path`: readers see the old file or the whole new one, never a part."""
    if "://" not in path:
        os.replace(tmp, path)
    else:
        _gfile().rename(tmp, path, overwrite=True)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary name and a rename; on a failure the temporary
    file is removed and `path` is left as it was (NoSpaceError where the disk is full)."""
    parent = os.path.dirname(path)
    if parent:
        makedirs(parent)
    tmp = temp_name(path)
    try:
        if "://" not in path:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            with _gfile().GFile(tmp, "wb") as fh:
                fh.write(data)
        commit(tmp, path)
    except BaseException as err:
        discard(tmp)
        if out_of_space(err):
            raise NoSpaceError(path) from None
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str, data) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_bytes(path: str) -> bytes:
    """The bytes of a local or remote file."""
    if "://" not in path:
        with open(path, "rb") as fh:
            return fh.read()
    with _gfile().GFile(path, "rb") as fh:
        return fh.read()


def read_text(path: str) -> str:
    """The text of a local or remote file."""
    if "://" not in path:
        with open(path) as fh:
            return fh.read()
    with _gfile().GFile(path) as fh:
        return fh.read()


def read_json(path: str):
    """Parsed JSON of a local or remote file."""
    return json.loads(read_text(path))
