"""`birdtpu predict`: recordings cut into windows, scored by one or more saved models, submission.csv.

Per recording: decode once per model sample rate (any rate, mono or stereo -> mean of channels),
cut into `infer.window_seconds` windows (`windows.py`: ids `<stem>_<end second>`, last window
zero-padded, context from the neighbours for a model with a longer clip), score each window
and its `infer.tta_shifts` copies (averaged), then: blend the models (mean, or the stacker of
`infer.stacker`), smooth over neighbouring windows (`infer.smooth`), and optionally keep one row
per recording (`infer.aggregate`). The submission follows the sample submission's columns and
is validated before it is written.

A recording that cannot be decoded or has no samples is named, counted and left out; the others
are predicted (the CLI then exits 1). A truncated recording is predicted over the part that
decodes, named and counted. Non-finite samples are set to zero and counted. The next
recording is decoded in a background thread while the current one is scored.
"""

from __future__ import annotations

import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.data.audio import (
    AUDIO_EXTENSIONS,
    AudioError,
    container_problem,
    load_audio,
)
from birdtpu.errors import DataError
from birdtpu.fs import join
from birdtpu.infer import postprocess
from birdtpu.infer.runners import KerasRunner, load_model, open_model  # noqa: F401  (load_model: public)
from birdtpu.infer.submission import like_sample, validate_submission, write_submission  # noqa: F401
from birdtpu.infer.windows import row_ids, window_ends, windows
from birdtpu.progress import Progress

FLOAT_TOLERANCE = 1e-3  # a float32 export further than this from its Keras model is refused


def list_recordings(folder: str) -> list[str]:
    """Audio files directly in `folder`, sorted."""
    import tensorflow as tf

    if not fs.exists(folder):
        raise DataError(f"{folder}: soundscape folder not found")
    names = sorted(n for n in tf.io.gfile.listdir(folder) if n.lower().endswith(AUDIO_EXTENSIONS))
    return [join(folder, n) for n in names]


def model_paths(cfg) -> list[str]:
    """The models of `infer.model` (comma-separated), or the run's model.keras."""
    paths = [p.strip() for p in cfg.infer.model.split(",") if p.strip()]
    return paths or [join(cfg.run_dir, "model.keras")]


def decode(path: str, rates: list[int]) -> dict[int, np.ndarray]:
    """{rate: mono float32 wave} of `path`; AudioError where it is unreadable or has no samples."""
    out = {}
    for rate in rates:
        wave, _ = load_audio(path, rate, check=False)
        if wave.size == 0:
            raise AudioError(path, container_problem(path) or "empty (no samples)")
        out[rate] = wave
    return out


def _decoded(paths: list[str], rates: list[int], ahead: int = 2):
    """(path, (waves or the AudioError, why it is cut short or None)) in order, decoding up to
    `ahead` files in a background thread."""

    def job(path):
        try:
            return decode(path, rates), container_problem(path)
        except AudioError as err:
            return err, None

    with ThreadPoolExecutor(1) as pool:
        queue = deque((p, pool.submit(job, p)) for p in paths[:ahead])
        rest = iter(paths[ahead:])
        while queue:
            path, future = queue.popleft()
            nxt = next(rest, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(job, nxt)))
            yield path, future.result()


def context_seconds(runner, window_seconds: float) -> float:
    """Seconds of neighbouring audio on each side that fill the model's clip around a window."""
    rate = runner.meta["sample_rate"]
    extra = runner.samples - int(round(window_seconds * rate))
    if extra < 0:
        raise DataError(
            f"{runner.path}: its clip ({runner.meta['clip_seconds']} s) is shorter than "
            f"infer.window_seconds ({window_seconds} s)"
        )
    return extra / (2 * rate)


def score_recording(
    runner, wave: np.ndarray, window: float, hop: float = 0.0, shifts: list[float] = ()
) -> tuple[np.ndarray, list[float]]:
    """(windows x classes probabilities, end seconds) of one recording at the runner's rate.

    Each window is scored as it is and shifted by each of `shifts` seconds; the scores are averaged.
    """
    rate, context = runner.meta["sample_rate"], context_seconds(runner, window)
    scores, ends = [], []
    for shift in (0.0, *shifts):
        batch, ends = windows(wave, rate, window, hop or None, context, shift)
        scores.append(runner(batch))
    return np.mean(scores, axis=0, dtype=np.float64).astype(np.float32), ends


def check_export(runner, wave: np.ndarray, infer, log=print) -> dict | None:
    """Compare an export with the Keras model it came from on the first windows of `wave`.

    Returns the comparison (None for a Keras model, with `check_windows` 0, or where the Keras
    model is not at hand); DataError where a float32 export differs by more than FLOAT_TOLERANCE.
    """
    from birdtpu.infer.export import compare

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
    result = compare(KerasRunner(ref_path, infer.batch_size), runner, batch[: infer.check_windows])
    log(
        f"predict: {runner.path} vs {ref_path} on {result['check_windows']} window(s): largest difference "
        f"{result['max_abs_diff']:.2e}, same top class on {result['top1_agreement']:.0%}"
    )
    if runner.meta.get("format") != "tflite-int8" and result["max_abs_diff"] > FLOAT_TOLERANCE:
        raise DataError(
            f"{runner.path}: differs from {ref_path} by {result['max_abs_diff']:.2e} "
            f"(over {FLOAT_TOLERANCE}); export it again with `birdtpu export`"
        )
    return result


def _classes(runners) -> list[str]:
    classes = runners[0].classes
    for r in runners[1:]:
        if sorted(r.classes) != sorted(classes):
            raise DataError(
                f"{r.path}: its classes differ from those of {runners[0].path}; "
                "blended models need the same classes"
            )
    return classes


def predict_recordings(runners, paths: list[str], infer, log=print, blender=None) -> dict:
    """Score `paths` with `runners` (see the module docstring) into a submission-shaped table.

    Returns {table (row_id + classes), expected (the ids the predicted recordings must have, from
    their lengths), skipped [{file, reason}], partial [{file, reason}] (truncated, predicted over
    what decodes), export_checks {path: comparison}, windows, seconds}.
    Models at other sample rates are fitted to the windows of the lowest rate (resampling can
    add or drop a window of a few samples at the end).
    """
    classes = _classes(runners)
    order = [[r.classes.index(c) for c in classes] for r in runners]
    rates = sorted({r.meta["sample_rate"] for r in runners})
    ids, expected, parts, skipped, partial, checks = [], [], [], [], [], {}
    started, n_windows = time.time(), 0
    progress = Progress(len(paths), log, name="predict", unit="recordings")
    for path, (waves, problem) in _decoded(paths, rates):
        if isinstance(waves, AudioError):
            skipped.append({"file": path, "reason": waves.reason})
            progress.message(f"predict: skip {path}: {waves.reason}")
            progress.advance()
            continue
        if problem:
            partial.append({"file": path, "reason": problem})
            progress.message(
                f"predict: {path}: {problem}; predicting the "
                f"{len(waves[rates[0]]) / rates[0]:.2f} s that decode"
            )
        for rate, wave in waves.items():
            bad = ~np.isfinite(wave)
            if bad.any():
                wave[bad] = 0.0
                progress.message(
                    f"predict: {path}: {int(bad.sum())} non-finite sample(s) at {rate} Hz set to 0"
                )
        if not parts:
            for r in runners:
                checks[r.path] = check_export(r, waves[r.meta["sample_rate"]], infer, log)
            started = time.time()  # the rate counts scoring, not the checks
        stem = os.path.splitext(os.path.basename(path))[0]
        grid = window_ends(
            len(waves[rates[0]]), rates[0], infer.window_seconds, infer.hop_seconds or None
        )
        rows = row_ids(stem, grid)
        expected.extend([stem] if infer.aggregate != "none" else rows)
        preds = []
        for r, idx in zip(runners, order):
            p, _ = score_recording(
                r,
                waves[r.meta["sample_rate"]],
                infer.window_seconds,
                infer.hop_seconds,
                infer.tta_shifts,
            )
            p = p[: len(grid), idx]
            preds.append(np.concatenate([p, np.repeat(p[-1:], len(grid) - len(p), axis=0)]))
        if blender is not None:
            probs = postprocess.stack_blend(blender, rows, classes, preds)
        else:
            probs = postprocess.mean_blend(preds)
        probs = postprocess.smooth(probs, infer.smooth)
        if infer.aggregate != "none":
            probs, rows = postprocess.aggregate(probs, infer.aggregate), [stem]
        ids.extend(rows)
        parts.append(probs)
        n_windows += len(grid)
        progress.advance(1, len(waves[rates[0]]) / rates[0])
    progress.close()
    table = pd.DataFrame(
        np.concatenate(parts) if parts else np.zeros((0, len(classes)), np.float32), columns=classes
    )
    table.insert(0, "row_id", ids)
    return {
        "table": table,
        "expected": expected,
        "skipped": skipped,
        "partial": partial,
        "export_checks": checks,
        "windows": n_windows,
        "seconds": time.time() - started,
    }


def _sample_submission(cfg) -> str:
    """The sample submission to follow: infer.sample_submission, or the dataset's where it exists."""
    setting = cfg.infer.sample_submission
    if setting == "none":
        return ""
    if setting:
        return setting
    default = join(cfg.data.root, "sample_submission.csv")
    return default if fs.exists(default) else ""


def predict(cfg, log=print) -> dict:
    """Predict the recordings of `cfg` and write the submission; returns a summary.

    Summary keys: submission, rows, files, skipped, partial, windows, windows_per_second, export_checks,
    and macro_roc_auc (with truth_rows) where `<data.root>/soundscape_labels.csv` has truth for them.
    """
    inf = cfg.infer
    runners = [open_model(p, inf.batch_size, inf.threads) for p in model_paths(cfg)]
    blender = postprocess.load_blender(inf.stacker) if inf.stacker else None
    folder = join(cfg.data.root, cfg.data.soundscape_dir)
    paths = list_recordings(folder)
    if not paths:
        raise DataError(f"{folder}: no recordings ({', '.join(AUDIO_EXTENSIONS)}) to predict")
    result = predict_recordings(runners, paths, inf, log, blender)
    table, skipped = result["table"], result["skipped"]
    if table.empty:
        raise DataError(
            f"{folder}: none of the {len(paths)} recordings could be predicted "
            f"(e.g. {skipped[0]['file']}: {skipped[0]['reason']})"
        )
    classes = list(table.columns[1:])
    sample = _sample_submission(cfg)
    if sample:
        table = like_sample(table, sample, log)
    out = inf.submission or join(cfg.run_dir, "submission.csv")
    write_submission(table, out, list(table.columns[1:]), result["expected"])
    summary = {
        "submission": out,
        "rows": len(table),
        "files": len(paths) - len(skipped),
        "skipped": skipped,
        "partial": result["partial"],
        "windows": result["windows"],
        "windows_per_second": result["windows"] / max(result["seconds"], 1e-9),
        "export_checks": {k: v for k, v in result["export_checks"].items() if v},
    }
    truth_path = join(cfg.data.root, "soundscape_labels.csv")
    if fs.exists(truth_path):
        from birdtpu.infer.scoring import score_against_truth

        summary.update(score_against_truth(result["table"], truth_path, classes, inf, log))
    log(
        f"predict: {summary['windows']} windows of {summary['files']} recordings "
        f"({summary['windows_per_second']:.1f} windows/s), {len(skipped)} skipped -> {out}"
        + (
            f"; macro ROC-AUC against {truth_path}: {summary['macro_roc_auc']:.4f}"
            if "macro_roc_auc" in summary
            else ""
        )
    )
    return summary
