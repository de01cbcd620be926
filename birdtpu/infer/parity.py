"""Parity of an export with its Keras model: the windows to compare on and the comparison.

`birdtpu export` compares each export with the Keras model it came from on real windows of the
dataset (synthetic ones where there are none, and says which) and writes the result into the
export's sidecar;
`birdtpu predict` compares again on the first windows of the first recording and refuses a float
export further than FLOAT_TOLERANCE from its model.
"""

from __future__ import annotations

import os

import numpy as np

from birdtpu import fs
from birdtpu.data.audio import AudioError
from birdtpu.errors import DataError
from birdtpu.fs import join
from birdtpu.infer.clip_inputs import recording_clip_inputs
from birdtpu.infer.files import QUANTIZED, read_meta
from birdtpu.infer.recordings import decode, list_recordings
from birdtpu.infer.runners import open_model
from birdtpu.infer.windows import context_seconds, windows

FLOAT_TOLERANCE = 1e-3  # a float32 export further than this from its Keras model is refused


def compare(reference, runner, waves: np.ndarray, clip: dict | None = None) -> dict:
    """Largest absolute difference and top-class agreement of two runners on the same windows
    (and their clip inputs, for a model that takes them)."""
    a, b = reference(waves, clip), runner(waves, clip)
    return {
        "check_windows": len(waves),
        "max_abs_diff": float(np.abs(a - b).max()),
        "top1_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
    }


def synthetic_windows(samples: int, sample_rate: int, n: int = 8, seed: int = 0) -> np.ndarray:
    """`n` seeded windows of noise with a rising tone each, for checks where no audio is at hand."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sample_rate
    out = np.empty((n, samples), np.float32)
    for i in range(n):
        f0 = rng.uniform(500, 0.3 * sample_rate)
        tone = np.sin(2 * np.pi * (f0 + 0.05 * f0 * t / t[-1]) * t)
        out[i] = 0.3 * tone * (np.sin(np.pi * t / t[-1]) ** 2) + 0.05 * rng.standard_normal(samples)
    return out


def check_windows_for(cfg, model_path: str, log=print, n: int = 32) -> tuple[np.ndarray, str]:
    """(up to `n` clip-length windows at the model's rate, which they are) for comparing an export
    with its Keras model: windows of the soundscapes `predict` reads (`data.root`/
    `data.soundscape_dir`, from the working folder), or seeded synthetic ones where none decode."""
    meta = read_meta(model_path)
    rate, clip = int(meta["sample_rate"]), float(meta["clip_seconds"])
    folder = fs.absolute(join(cfg.data.root, cfg.data.soundscape_dir))
    found: list[np.ndarray] = []
    used = 0
    paths = list_recordings(folder) if fs.exists(folder) else []
    for path in paths:
        try:
            wave = decode(path, [rate])[rate]
        except AudioError:
            continue
        found.extend(windows(wave, rate, clip)[0][: n - len(found)])
        used += 1
        if len(found) >= n:
            break
    if found:
        where = f"{len(found)} windows of {used} recording(s) in {folder}"
        log(f"export: checking on {where}")
        return np.nan_to_num(np.stack(found)), where
    check = synthetic_windows(int(round(clip * rate)), rate)
    why = (
        f"none of the {len(paths)} recordings in {folder} decode"
        if paths
        else f"no recordings in {folder}"
        if fs.exists(folder)
        else f"no folder {folder} (data.root/data.soundscape_dir)"
    )
    log(f"export: {why}; checking on synthetic windows (seeded tones in noise)")
    return check, f"{len(check)} synthetic windows ({why})"


def check_export(runner, wave: np.ndarray, infer, log=print) -> dict | None:
    """Compare an export with the Keras model it came from on the first windows of `wave`.

    Returns the comparison (None for a Keras model, with `check_windows` 0, or where the Keras
    model is not at hand); DataError where a float32 export differs by more than FLOAT_TOLERANCE.
    """
    if runner.format == "keras" or not infer.check_windows:
        return None
    source = runner.meta.get("source") or ""
    ref_path = (
        source
        if not source or fs.is_remote(source) or os.path.isabs(source)
        else join(os.path.dirname(runner.path.rstrip("/")) or ".", source)
    )
    if not ref_path or not fs.exists(ref_path):
        log(
            f"predict: {runner.path} not checked: its Keras model {ref_path or '(not recorded)'} is not there"
        )
        return None
    batch, _ = windows(
        wave,
        runner.meta["sample_rate"],
        infer.window_seconds,
        infer.hop_seconds or None,
        context_seconds(runner, infer.window_seconds),
    )
    batch = batch[: infer.check_windows]
    clip = recording_clip_inputs(runner, wave)
    result = compare(open_model(ref_path, infer.batch_size), runner, batch, clip)
    log(
        f"predict: {runner.path} vs {ref_path} on {result['check_windows']} window(s): largest difference "
        f"{result['max_abs_diff']:.2e}, same top class on {result['top1_agreement']:.0%}"
    )
    if runner.meta.get("format") not in QUANTIZED and result["max_abs_diff"] > FLOAT_TOLERANCE:
        raise DataError(
            f"{runner.path}: differs from {ref_path} by {result['max_abs_diff']:.2e} "
            f"(over {FLOAT_TOLERANCE}); export it again with `birdtpu export`"
        )
    return result
