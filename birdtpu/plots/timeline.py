"""A soundscape's window predictions over time: row ids split, one soundscape's windows, a heat map."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from birdtpu.errors import DataError
from birdtpu.plots.figures import class_ticks, new_figure


def split_row_ids(ids) -> pd.DataFrame:
    """Row ids `<soundscape>_<end second>` as columns `soundscape` and `end` (float); DataError
    naming the first id that is not of that form."""
    parts = pd.Series(ids, dtype=str).str.rsplit("_", n=1)
    ends = pd.to_numeric(parts.str[1], errors="coerce")
    bad = parts.map(len).ne(2) | ends.isna()
    if bad.any():
        raise DataError(
            f"row_id {ids[int(np.argmax(bad.to_numpy()))]!r} is not <soundscape>_<end second>"
        )
    return pd.DataFrame({"soundscape": parts.str[0], "end": ends.astype(float)})


def soundscape_windows(
    submission: pd.DataFrame, soundscape: str | None = None
) -> tuple[str, np.ndarray, list[str], np.ndarray]:
    """(soundscape, end seconds, classes, values windows x classes) of one soundscape of a
    submission (the first one when None), its windows in time order."""
    if submission.shape[1] < 2:
        raise DataError("submission: expected an id column and class columns")
    id_column = submission.columns[0]
    parts = split_row_ids(submission[id_column].tolist())
    names = list(dict.fromkeys(parts["soundscape"]))
    name = names[0] if soundscape is None else soundscape
    if name not in names:
        raise DataError(
            f"soundscape {name!r} is not in the submission ({len(names)} soundscapes, e.g. "
            f"{', '.join(names[:3])})"
        )
    mine = np.flatnonzero(parts["soundscape"].to_numpy() == name)
    order = mine[np.argsort(parts["end"].to_numpy()[mine], kind="stable")]
    classes = [str(c) for c in submission.columns[1:]]
    return (
        name,
        parts["end"].to_numpy()[order],
        classes,
        submission.iloc[order][classes].to_numpy(np.float64),
    )


def timeline_figure(
    name: str, ends: np.ndarray, classes: list[str], values: np.ndarray, top: int = 0
) -> Figure:
    """Heat map (panel `timeline`) of a soundscape's predictions: one row per class (submission
    order; with `top`, only the `top` classes with the highest peak), one column per window; its
    image array is `values.T`. Window i spans (end_i - window, end_i] seconds."""
    if top and top < len(classes):
        keep = np.sort(np.argsort(-values.max(axis=0), kind="stable")[:top])
        classes, values = [classes[i] for i in keep], values[:, keep]
    window = float(np.median(np.diff(ends))) if len(ends) > 1 else float(ends[0])
    fig = new_figure(max(8.0, 0.12 * len(ends) + 3.0), 0.16 * len(classes) + 1.8)
    ax = fig.add_subplot(gid="timeline")
    image = ax.imshow(
        values.T,
        aspect="auto",
        origin="upper",
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
        extent=(ends[0] - window, ends[-1], len(classes) - 0.5, -0.5),
    )
    class_ticks(ax, classes, axis="y")
    ax.set_xlabel("seconds")
    ax.set_title(f"{name}: {len(ends)} windows x {len(classes)} classes")
    fig.colorbar(image, ax=ax, label="probability", fraction=0.03, pad=0.01)
    fig.tight_layout()
    return fig
