"""Notebook helpers for the kernels: listen to a catalog row and look at it.

    from birdtpu.notebook import display_audio
    display_audio(df.iloc[0])   # a player, the waveform and spectrogram, the labels

Needs IPython (every Jupyter and Kaggle kernel has it).
"""

from __future__ import annotations

from typing import NamedTuple

from birdtpu.errors import BirdtpuError


class Shown(NamedTuple):
    """What `display_audio` displayed: the player, the picture, its labels and the audio itself."""

    audio: object  # IPython.display.Audio (WAV bytes in .data)
    image: object  # IPython.display.Image (PNG bytes in .data)
    labels: list[str]
    wave: object  # float32 samples at sample_rate
    sample_rate: int


def _ipython_display():
    try:
        from IPython import display
    except ImportError:
        raise BirdtpuError("birdtpu.notebook needs IPython (pip install ipython)") from None
    return display


def _labels(row) -> list[str]:
    """The row's `labels` (a list, or its text as a CSV holds it), else its primary `label`."""
    labels = row.get("labels")
    if isinstance(labels, str):
        from birdtpu.data.catalog import parse_label_list

        labels = parse_label_list(labels, "row labels")
    if labels is None or isinstance(labels, float) or not len(labels):
        return [str(row["label"])]
    return [str(x) for x in labels]


def display_audio(
    row, sample_rate: int = 32000, max_seconds: float | None = 30.0, show: bool = True
) -> Shown:
    """Play a catalog row's recording (`filepath`) and show its waveform and spectrogram titled with
    its labels (primary first) and source; `max_seconds` decodes only the start (None: all).

    Returns the displayed objects, so the caller (or a test) can use them without a notebook;
    `show=False` builds them without displaying.
    """
    from birdtpu import plots
    from birdtpu.data.audio import load_audio

    display = _ipython_display()
    wave, rate = load_audio(str(row["filepath"]), sample_rate, max_seconds=max_seconds)
    labels = _labels(row)
    source = row.get("source")
    title = ", ".join(labels) + (f"  ({source})" if isinstance(source, str) and source else "")
    title += f"  {row['filepath']}  {len(wave) / rate:.1f} s at {rate} Hz"
    audio = display.Audio(data=wave, rate=rate)
    image = display.Image(data=plots.png_bytes(plots.audio_figure(wave, rate, title)), format="png")
    if show:
        display.display(audio, image)
    return Shown(audio, image, labels, wave, rate)
