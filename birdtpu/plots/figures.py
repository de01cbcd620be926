"""Figures on the Agg canvas (no pyplot), PNG bytes and files, panels found by `gid`, class ticks."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from birdtpu import fs

MAX_TICKS = 80  # more classes than this: no class names on the axis


def new_figure(width: float, height: float) -> Figure:
    """A Figure on the Agg canvas (inches; capped at 60 x 60)."""
    fig = Figure(figsize=(min(width, 60.0), min(height, 60.0)), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_png(fig: Figure, path: str) -> str:
    """Write `fig` as a PNG to `path` atomically; returns `path`."""
    fs.atomic_write_bytes(path, png_bytes(fig))
    return path


def axes(fig: Figure, gid: str):
    """The Axes of `fig` named `gid`."""
    for ax in fig.axes:
        if ax.get_gid() == gid:
            return ax
    raise KeyError(gid)


def class_ticks(ax, names, axis: str = "x") -> None:
    positions = np.arange(len(names))
    if len(names) > MAX_TICKS:
        getattr(ax, f"set_{axis}ticks")([])
        return
    getattr(ax, f"set_{axis}ticks")(positions)
    getattr(ax, f"set_{axis}ticklabels")(
        list(names), rotation=90 if axis == "x" else 0, fontsize=7 if len(names) > 30 else 9
    )
