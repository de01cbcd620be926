"""PNG plots of the data, the pipeline and a run, drawn with matplotlib's object API (no pyplot:
headless, no global state).

Each `*_figure` function returns a `matplotlib.figure.Figure` whose Axes hold the plotted numbers
(bar heights, image arrays, line data), so a test or a notebook can read them back; `save_png`
writes one atomically (local or gs://). Axes carry a `gid` naming their panel.

| figure                        | shows                                                               |
|-------------------------------|---------------------------------------------------------------------|
| `class_distribution_figure`   | rows per class (long tail, stacked by source), per fold, per source |
| `spectrogram_grid_figure`     | what the model sees: frontend images per class, clean and augmented |
| `history_figure`              | loss, metrics (train dashed, validation solid), learning rate       |
| `scores_figure`               | per-class ROC-AUC, average precision, lwlrap; the worst classes     |
| `timeline_figure`             | a soundscape's window predictions: classes over time                |
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from birdtpu import fs
from birdtpu.errors import DataError

MAX_TICKS = 80  # more classes than this: no class names on the axis
SCORE_COLUMNS = ("roc_auc", "average_precision", "lwlrap")


# ------------------------------------------------------------------ figures and files


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


def _class_ticks(ax, names, axis: str = "x") -> None:
    positions = np.arange(len(names))
    if len(names) > MAX_TICKS:
        getattr(ax, f"set_{axis}ticks")([])
        return
    getattr(ax, f"set_{axis}ticks")(positions)
    getattr(ax, f"set_{axis}ticklabels")(
        list(names), rotation=90 if axis == "x" else 0, fontsize=7 if len(names) > 30 else 9
    )


# ------------------------------------------------------------------ classes


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
    _class_ticks(ax, counts.index)
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
        _class_ticks(ax, folds.index)
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


# ------------------------------------------------------------------ spectrograms


@dataclass
class SpectrogramSheet:
    """Frontend images per class: `clean` (eval pipeline, frontend training=False) and `augmented`
    (training pipeline with the augment config, frontend training=True), each (classes, k, mels,
    frames) with NaN where a class had no example; `*_titles` (classes, k) say which clip or mixture."""

    classes: list[str]
    clean: np.ndarray
    clean_titles: list[list[str]]
    augmented: np.ndarray
    augmented_titles: list[list[str]]


def _mixture(target: np.ndarray, classes: list[str]) -> str:
    """`a 0.62 + b 0.38`: the classes of a (mixed) target, largest first."""
    order = np.argsort(-target, kind="stable")
    return " + ".join(f"{classes[i]} {target[i]:.2f}" for i in order[:3] if target[i] > 0.01)


def _collect(
    batches,
    fe,
    training: bool,
    names: list[str],
    rows: list[int],
    k: int,
    with_ids: bool,
    max_batches: int | None,
):
    """(images (rows, k, mels, frames) with NaN gaps, titles) of the first `k` clips whose target's
    largest entry is each class of `rows` (indices into `names`), reading at most `max_batches`."""
    where = {c: r for r, c in enumerate(rows)}
    images, titles, filled = None, [[""] * k for _ in rows], np.zeros(len(rows), int)
    for n, batch in enumerate(batches):
        if filled.min() >= k or (max_batches is not None and n >= max_batches):
            break
        wave, target = batch[0], batch[1].numpy()
        spec = np.asarray(fe(wave, training=training))[..., 0]
        if images is None:
            images = np.full((len(rows), k, *spec.shape[1:]), np.nan, np.float32)
        for i, t in enumerate(target):
            r = where.get(int(np.argmax(t)))
            if r is None or t.max() <= 0 or filled[r] >= k:
                continue
            images[r, filled[r]] = spec[i]
            titles[r][filled[r]] = batch[2][i].numpy().decode() if with_ids else _mixture(t, names)
            filled[r] += 1
    if images is None:
        raise DataError("the pipeline gave no clips to show")
    return images, titles


def pipeline_spectrograms(
    cfg,
    per_class: int = 2,
    classes: list[str] | None = None,
    max_classes: int = 0,
    max_batches: int = 50,
    log=print,
) -> SpectrogramSheet:
    """What the model sees, per class: clips of the run's shards (built where missing) through
    `birdtpu.data.pipeline.build_dataset` and the model's frontend, without augmentation (eval
    pipeline, training=False) and with it (training pipeline with `cfg.augment`: waveform
    augmentations, mixup/cutmix; frontend training=True: masks).

    Rows: `classes`, else the first `max_classes` (0: all). Clean clips are the first of each
    class by primary label (the shards are read until each has `per_class`); augmented ones are
    picked by their target's largest entry among the first `max_batches` training batches.
    """
    from birdtpu.data.pipeline import build_dataset
    from birdtpu.data.prepare import ensure_shards
    from birdtpu.data.shards import shard_paths
    from birdtpu.layers.frontend import frontend

    manifest = ensure_shards(cfg, log)
    names = manifest["classes"]
    unknown = [c for c in classes or () if c not in names]
    if unknown:
        raise DataError(
            f"class {unknown[0]!r} is not a class of {cfg.shard_dir} ({', '.join(names[:8])}...)"
        )
    rows = (
        [names.index(c) for c in classes]
        if classes
        else list(range(len(names)))[: max_classes or None]
    )
    rate = cfg.data.sample_rate
    common = dict(
        num_classes=len(names),
        clip_samples=int(round(cfg.frontend.clip_seconds * rate)),
        batch_size=cfg.train.batch_size,
        compression=cfg.shards.compression,
        seed=cfg.runtime.seed,
        deterministic=True,
        sample_rate=rate,
        log=log,
    )
    paths = shard_paths(cfg.shard_dir, manifest)
    fe = frontend(cfg.frontend, rate, cfg.augment)
    clean = build_dataset(paths, training=False, with_ids=True, secondary_weight=0.0, **common)
    clean, clean_titles = _collect(clean, fe, False, names, rows, per_class, True, None)
    train = build_dataset(
        paths, training=True, augment=cfg.augment, shuffle_buffer=cfg.train.shuffle_buffer, **common
    )
    augmented, augmented_titles = _collect(
        train, fe, True, names, rows, per_class, False, max_batches
    )
    return SpectrogramSheet(
        [names[i] for i in rows], clean, clean_titles, augmented, augmented_titles
    )


def spectrogram_grid_figure(sheet: SpectrogramSheet, title: str = "") -> Figure:
    """One row per class: the clean images, then the augmented ones. Axes `r<i>c<j>` (j counts the
    clean columns first) show image [i, j] with low frequencies at the bottom; empty where NaN."""
    k = sheet.clean.shape[1]
    rows, cols = len(sheet.classes), 2 * k
    fig = new_figure(2.6 * cols + 1.0, 1.9 * rows + 0.8)
    grid = fig.subplots(rows, cols, squeeze=False)
    vmin = np.nanmin(
        [np.nanmin(a) if np.isfinite(a).any() else 0.0 for a in (sheet.clean, sheet.augmented)]
    )
    vmax = np.nanmax(
        [np.nanmax(a) if np.isfinite(a).any() else 1.0 for a in (sheet.clean, sheet.augmented)]
    )
    for i, name in enumerate(sheet.classes):
        for j in range(cols):
            ax = grid[i, j]
            ax.set_gid(f"r{i}c{j}")
            image = sheet.clean[i, j] if j < k else sheet.augmented[i, j - k]
            caption = sheet.clean_titles[i][j] if j < k else sheet.augmented_titles[i][j - k]
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name, fontsize=10)
            if np.isnan(image).all():
                ax.set_title("(no clip)", fontsize=7)
                continue
            ax.imshow(
                image,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=vmin,
                vmax=vmax,
                interpolation="nearest",
            )
            ax.set_title(f"{'clean' if j < k else 'augmented'}: {caption}"[:48], fontsize=7)
    fig.suptitle(
        title
        or "what the model sees: frontend output per class, without (left) and with (right) "
        "augmentation",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def stft_db(
    wave: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256, top_db: float = 80.0
) -> np.ndarray:
    """(n_fft // 2 + 1, frames) power spectrogram in dB (Hann window), floored at its max - top_db."""
    wave = np.asarray(wave, np.float32).reshape(-1)
    wave = np.pad(wave, (n_fft // 2, n_fft // 2 + max(0, n_fft - len(wave))))
    frames = np.lib.stride_tricks.sliding_window_view(wave, n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)) ** 2
    db = 10.0 * np.log10(np.maximum(power.T, 1e-10))
    return np.maximum(db, db.max() - top_db)


def spectrogram_rgb(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """`stft_db` as a uint8 RGB image (rows from high to low frequency), for tables and notebooks."""
    from matplotlib import colormaps

    db = stft_db(wave, sample_rate)
    scaled = (db - db.min()) / max(float(db.max() - db.min()), 1e-9)
    return (colormaps["magma"](scaled[::-1])[..., :3] * 255).astype(np.uint8)


def audio_figure(wave: np.ndarray, sample_rate: int, title: str = "") -> Figure:
    """A clip's waveform (panel `wave`) above its `stft_db` spectrogram (panel `spectrogram`)."""
    wave = np.asarray(wave, np.float32).reshape(-1)
    seconds = len(wave) / sample_rate
    fig = new_figure(10.0, 4.5)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 3]})
    top.set_gid("wave")
    top.plot(np.arange(len(wave)) / sample_rate, wave, linewidth=0.4, color="tab:blue")
    top.set_title(title, fontsize=10)
    bottom.set_gid("spectrogram")
    bottom.imshow(
        stft_db(wave, sample_rate),
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0.0, seconds, 0.0, sample_rate / 2000.0),
    )
    bottom.set_ylabel("kHz")
    bottom.set_xlabel("seconds")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ history


def history_figure(history, title: str = "") -> Figure:
    """Training history (a history.csv table or its rows): a panel per metric (`loss` first; train
    dashed, `val_` solid) and the learning rate (panel `lr`), by epoch (1-based)."""
    df = pd.DataFrame(history)
    if df.empty or "epoch" not in df.columns:
        raise DataError("history: no rows with an `epoch` column")
    epochs = df["epoch"].to_numpy() + 1
    names = [c for c in df.columns if c not in ("epoch", "lr") and not c.startswith("val_")]
    names += [c[4:] for c in df.columns if c.startswith("val_") and c[4:] not in names]
    names.sort(key=lambda n: (n != "loss", n))
    panels = names + (["lr"] if "lr" in df.columns else [])
    fig = new_figure(4.0 * len(panels), 3.4)
    for ax, name in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.set_gid(name)
        if name == "lr":
            ax.plot(epochs, df["lr"].to_numpy(), "-o", ms=3, label="lr")
            ax.set_yscale(
                "log" if (df["lr"] > 0).all() and df["lr"].max() > 20 * df["lr"].min() else "linear"
            )
            ax.set_title("learning rate (epoch end)")
        else:
            for column, style in ((name, "--o"), (f"val_{name}", "-o")):
                if column in df.columns:
                    ax.plot(epochs, df[column].to_numpy(), style, ms=3, label=column)
            ax.set_title(name)
            ax.legend(fontsize=8)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ per-class scores


def class_scores(
    truth: pd.DataFrame, pred: pd.DataFrame, names: tuple[str, str] = ("truth", "pred")
) -> pd.DataFrame:
    """Per class (truth's order): positives, roc_auc, average_precision, lwlrap and its weight
    (birdtpu.metrics; NaN where a class lacks positives, or negatives for ROC-AUC)."""
    from birdtpu.metrics import (
        align_tables,
        lwlrap_per_class,
        per_class_average_precision,
        per_class_roc_auc,
    )

    y, s, classes = align_tables(truth, pred, names)
    per, weight = lwlrap_per_class(y, s)
    per = np.where(weight > 0, per, np.nan)  # a class without positives has no lwlrap (it weighs 0)
    return pd.DataFrame(
        {
            "class": classes,
            "positives": y.sum(axis=0).astype(int),
            "roc_auc": per_class_roc_auc(y, s),
            "average_precision": per_class_average_precision(y, s),
            "lwlrap": per,
            "lwlrap_weight": weight,
        }
    )


def worst_classes(scores: pd.DataFrame, k: int = 10, by: str = "roc_auc") -> pd.DataFrame:
    """The `k` classes with the lowest `by` (classes where it is undefined left out)."""
    return scores.dropna(subset=[by]).sort_values([by, "class"], kind="stable").head(k)


def scores_figure(
    scores: pd.DataFrame, worst: int = 10, by: str = "roc_auc", title: str = ""
) -> Figure:
    """Panels `roc_auc`, `average_precision`, `lwlrap`: one bar per class where defined, lowest
    first, with the macro mean (lwlrap: the weighted sum) as a line; panel `worst`: the `worst`
    lowest classes by `by` with their other scores and positives."""
    fig = new_figure(max(9.0, 0.16 * len(scores) + 2.0), 12.0)
    grid = fig.subplots(4, 1, gridspec_kw={"height_ratios": [2, 2, 2, 2.4]})
    for ax, metric in zip(grid, SCORE_COLUMNS):
        ax.set_gid(metric)
        shown = scores.dropna(subset=[metric]).sort_values([metric, "class"], kind="stable")
        ax.bar(np.arange(len(shown)), shown[metric].to_numpy(), width=0.85, color="tab:blue")
        if metric == "lwlrap":
            overall = float((scores["lwlrap"].fillna(0) * scores["lwlrap_weight"]).sum())
        else:
            overall = float(shown[metric].mean()) if len(shown) else math.nan
        ax.axhline(
            overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.4f}"
        )
        _class_ticks(ax, shown["class"])
        ax.set_xlim(-0.6, max(len(shown), 1) - 0.4)
        ax.set_ylim(0, 1.02)
        left = len(scores) - len(shown)
        ax.set_title(
            f"{metric} per class, lowest first"
            + (f" ({left} undefined, not shown)" if left else "")
        )
        ax.legend(fontsize=8, loc="lower right")
    ax = grid[-1]
    ax.set_gid("worst")
    rows = worst_classes(scores, worst, by)
    bars = ax.barh(np.arange(len(rows)), rows[by].to_numpy(), color="tab:red")
    ax.bar_label(
        bars,
        [
            f" {r[by]:.3f}  ("
            + ", ".join(f"{m} {r[m]:.3f}" for m in SCORE_COLUMNS if m != by)
            + f", {r['positives']} positives)"
            for _, r in rows.iterrows()
        ],
        fontsize=8,
    )
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels(rows["class"].tolist())
    ax.invert_yaxis()
    ax.set_xlim(0, 1.6)
    ax.set_title(f"the {len(rows)} worst classes by {by}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ soundscape timeline


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
    _class_ticks(ax, classes, axis="y")
    ax.set_xlabel("seconds")
    ax.set_title(f"{name}: {len(ends)} windows x {len(classes)} classes")
    fig.colorbar(image, ax=ax, label="probability", fraction=0.03, pad=0.01)
    fig.tight_layout()
    return fig
