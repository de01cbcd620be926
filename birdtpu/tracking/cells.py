"""Table cells that play or show (`AudioClip`, `Picture`): as files beside a local CSV, and as W&B media."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from matplotlib.image import imsave

from birdtpu import fs
from birdtpu.fs import join


@dataclass(frozen=True)
class AudioClip:
    """A table cell that plays: mono float samples in [-1, 1] at `sample_rate`."""

    data: np.ndarray
    sample_rate: int
    caption: str = ""


@dataclass(frozen=True)
class Picture:
    """A table cell that shows an image: (h, w) or (h, w, 3) array (uint8, or float in [0, 1])."""

    data: np.ndarray
    caption: str = ""


def save_cell(value, folder: str, stem: str):
    """A table cell as the local CSV holds it: media written as files, named by their path."""
    if isinstance(value, AudioClip):
        buf = io.BytesIO()
        sf.write(
            buf,
            np.clip(np.asarray(value.data, np.float32), -1, 1),
            value.sample_rate,
            format="WAV",
            subtype="PCM_16",
        )
        path = join(folder, f"{stem}.wav")
        fs.atomic_write_bytes(path, buf.getvalue())
        return path if fs.is_remote(path) else os.path.relpath(path, os.path.dirname(folder))
    if isinstance(value, Picture):
        buf = io.BytesIO()
        imsave(buf, np.asarray(value.data), format="png", cmap="magma", origin="upper")
        path = join(folder, f"{stem}.png")
        fs.atomic_write_bytes(path, buf.getvalue())
        return path if fs.is_remote(path) else os.path.relpath(path, os.path.dirname(folder))
    return value


def wandb_cell(value, wandb):
    if isinstance(value, AudioClip):
        return wandb.Audio(
            np.asarray(value.data, np.float32),
            sample_rate=value.sample_rate,
            caption=value.caption or None,
        )
    if isinstance(value, Picture):
        return wandb.Image(np.asarray(value.data), caption=value.caption or None)
    return value
