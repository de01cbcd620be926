"""The class distribution of a catalog: rows per class stacked by source, per fold, per source."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from birdtpu.errors import DataError
from birdtpu.plots.figures import class_ticks, new_figure


def class_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Rows per primary label (index, most rows first, then by name) and source (columns, largest first)."""
    if "label" not in df.columns:
        raise DataError("catalog has no 'label' column")
    source = (
        df["source"].fillna("").astype(str)
        if "source" in df.columns
        else pd.Series("", index=df.index)
    )
    counts = pd.crosstab(df["label"].astype(str), source)
    total = counts.sum(axis=1)
    order = sorted(counts.index, key=lambda c: (-total[c], c))
    return counts.loc[order, counts.sum().sort_values(ascending=False, kind="stable").index]


def class_distribution_figure(
    df: pd.DataFrame, thresholds: dict[str, float] | None = None, title: str = ""
) -> Figure:
    """Rows per primary label: the long tail stacked by source (panel `classes`, one BarContainer
    per source, labelled with it), with `thresholds` ({legend label: rows}) as horizontal lines;
    rows per class and fold (`folds`, an image, classes x folds; fold -1 is train-only) where the
    table has a `fold` column; rows and classes per source (`sources`)."""
    counts = class_counts(df)
    has_folds = "fold" in df.columns
    width = max(8.0, 0.16 * len(counts) + 2.0)
    fig = new_figure(width, 10.0 if has_folds else 7.0)
    grid = fig.add_gridspec(
        3 if has_folds else 2, 1, height_ratios=[3, 2, 2] if has_folds else [3, 2]
    )
    ax = fig.add_subplot(grid[0], gid="classes")
    x = np.arange(len(counts))
    bottom = np.zeros(len(counts))
    for source in counts.columns:
        ax.bar(
            x, counts[source].to_numpy(), bottom=bottom, width=0.85, label=source or "(no source)"
        )
        bottom += counts[source].to_numpy()
    for (label, value), style in zip((thresholds or {}).items(), ("--", ":", "-.", "-")):
        ax.axhline(value, color="black", linestyle=style, linewidth=1, label=label)
    if len(counts) and bottom.max() >= 100 * max(bottom.min(), 1):
        ax.set_yscale("log")
    ax.set_xlim(-0.6, len(counts) - 0.4)
    class_ticks(ax, counts.index)
    ax.set_ylabel("rows")
    ax.set_title(title or f"{len(df)} rows, {len(counts)} classes (primary label), most rows first")
    ax.legend(fontsize=8, loc="upper right")
    if has_folds:
        folds = pd.crosstab(df["label"].astype(str), pd.to_numeric(df["fold"]).astype(int))
        folds = folds.reindex(index=counts.index, fill_value=0)
        ax = fig.add_subplot(grid[1], gid="folds")
        image = ax.imshow(
            folds.to_numpy().T, aspect="auto", cmap="viridis", interpolation="nearest"
        )
        ax.set_yticks(np.arange(len(folds.columns)))
        ax.set_yticklabels(
            [f"{'train-only' if k < 0 else f'fold {k}'} ({folds[k].sum()})" for k in folds.columns]
        )
        class_ticks(ax, folds.index)
        ax.set_title("rows per class and fold")
        fig.colorbar(image, ax=ax, label="rows", fraction=0.03, pad=0.01)
    ax = fig.add_subplot(grid[-1], gid="sources")
    per_source = counts.sum()
    bars = ax.barh(np.arange(len(per_source)), per_source.to_numpy(), color="tab:gray")
    classes = (counts > 0).sum()
    ax.bar_label(
        bars, [f" {n} rows, {classes[s]} classes" for s, n in per_source.items()], fontsize=8
    )
    ax.set_yticks(np.arange(len(per_source)))
    ax.set_yticklabels([s or "(no source)" for s in per_source.index])
    ax.invert_yaxis()
    ax.set_xlabel("rows")
    ax.set_title("rows per source")
    fig.tight_layout()
    return fig
