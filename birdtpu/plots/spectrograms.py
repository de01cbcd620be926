"""Spectrograms: what the model sees per class (the pipeline through the frontend), and a clip's
waveform and STFT spectrogram."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from birdtpu.errors import DataError
from birdtpu.plots.figures import new_figure


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
    # imported when called: they load Keras, which must wait for the CLI to choose its backend
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
