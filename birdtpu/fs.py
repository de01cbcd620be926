"""File-system helpers for local paths and `gs://` URLs alike: the one place that branches on them.

Local paths use the standard library (no TensorFlow import); URLs go through `tf.io.gfile`.
Writes are atomic (a temporary sibling, then a rename), and a full disk is a `NoSpaceError`.
"""

from __future__ import annotations

import errno
import hashlib
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


def is_remote(path: str) -> bool:
    """Whether `path` is a URL (`gs://`, `ram://`, ...) rather than a local path."""
    return "://" in str(path)


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(*parts: str) -> str:
    """Join path parts, keeping URLs intact."""
    if is_remote(parts[0]):
        return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))
    return os.path.join(*parts)


def absolute(path: str) -> str:
    """A local path made absolute; a URL without its trailing slash."""
    return path.rstrip("/") if is_remote(path) else os.path.abspath(path)


def exists(path: str) -> bool:
    """Whether `path` exists."""
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    """Whether `path` is a folder."""
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def size(path: str) -> int:
    """The size of a file in bytes."""
    return _gfile().stat(path).length if is_remote(path) else os.path.getsize(path)


def listdir(folder: str) -> list[str]:
    """The names in `folder` (no trailing slashes); [] where it does not exist."""
    if not is_remote(folder):
        return os.listdir(folder) if os.path.isdir(folder) else []
    return [n.rstrip("/") for n in _gfile().listdir(folder)] if _gfile().exists(folder) else []


def glob(pattern: str) -> list[str]:
    """Sorted paths matching `pattern`."""
    if is_remote(pattern):
        return sorted(_gfile().glob(pattern))
    import glob as _glob

    return sorted(_glob.glob(pattern))


def open(path: str, mode: str = "rb"):  # noqa: A001  (the module's file opener, as `fs.open`)
    """A file object for `path` (builtin `open` locally, `GFile` for URLs)."""
    if is_remote(path):
        return _gfile().GFile(path, mode)
    import builtins

    return builtins.open(path, mode)


def makedirs(path: str) -> None:
    """Create `path` and its parents (no error if it exists)."""
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
    """Delete a file (FileNotFoundError where it does not exist, as `os.remove`)."""
    if is_remote(path):
        if not _gfile().exists(path):
            raise FileNotFoundError(path)
        _gfile().remove(path)
    else:
        os.remove(path)


def discard(path: str) -> None:
    """Delete `path` if it exists (a temporary file of a failed write); never raises."""
    try:
        remove(path)
    except Exception:  # best effort: the next build removes what is left
        pass


def rmtree(path: str) -> None:
    """Delete a folder and everything in it."""
    if is_remote(path):
        _gfile().rmtree(path)
    else:
        import shutil

        shutil.rmtree(path)


def rename(src: str, dst: str) -> None:
    """Rename `src` over `dst`: readers see the old file or the whole new one, never a part."""
    if is_remote(dst):
        _gfile().rename(src, dst, overwrite=True)
    else:
        os.replace(src, dst)


def sync(path: str) -> None:
    """Flush a local file to disk (before its rename, so a crash cannot leave an empty file);
    object stores commit on close, so URLs need nothing."""
    if not is_remote(path):
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def temp_name(path: str) -> str:
    """A unique sibling name for writing `path` before the rename."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.tmp-{uuid.uuid4().hex[:8]}")


def sha256(path: str, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary name and a rename; on a failure the temporary
    file is removed and `path` is left as it was (NoSpaceError where the disk is full)."""
    parent = os.path.dirname(path)
    if parent:
        makedirs(parent)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if not is_remote(tmp):
                fh.flush()
                os.fsync(fh.fileno())
        rename(tmp, path)
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
    """The bytes of a file."""
    with open(path, "rb") as fh:
        return fh.read()


def read_text(path: str) -> str:
    """The text of a file."""
    with open(path, "r") as fh:
        return fh.read()


def read_json(path: str):
    """Parsed JSON of a file."""
    return json.loads(read_text(path))


def cores() -> int:
    """CPU cores this process may use (its affinity where the OS tells, else the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
