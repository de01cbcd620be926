"""`birdtpu predict`: recordings cut into windows, scored by one or more saved models, submission.csv.

Per recording: decode once per model sample rate (any rate, mono or stereo -> mean of channels),
cut into `infer.window_seconds` windows (`windows.py`: ids `<stem>_<end second>`, last window
zero-padded, context from the neighbours for a model with a longer clip), score each window
and its `infer.tta_shifts` copies (averaged; all windows of a recording go to a model as one
array, 12 for a minute of 5-s windows), then: blend the models (mean, or the stacker of
`infer.stacker`), write the taxon specialists of `infer.specialists` into their classes'
columns (`specialists.py`), smooth over neighbouring windows (`infer.smooth`), run the steps of
`infer.postprocess` (postprocess.STEPS, e.g. file-level confidence), and optionally keep one row
per recording (`infer.aggregate`). The submission follows the sample submission's columns and
is validated before it is written.

A recording that cannot be decoded or has no samples is named, counted and left out; the others
are predicted (the CLI then exits 1). A truncated recording is predicted over the part that
decodes, named and counted. Non-finite samples are set to zero and counted. The next
recording is decoded in a background thread while the current one is scored. Each model of an
ensemble (any formats, e.g. the OpenVINO exports of several folds) is timed on its own.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from birdtpu import fs, rowid
from birdtpu.data.audio import AUDIO_EXTENSIONS, AudioError
from birdtpu.errors import DataError
from birdtpu.fs import join
from birdtpu.infer import postprocess, specialists
from birdtpu.infer.clip_inputs import recording_clip_inputs
from birdtpu.infer.parity import check_export
from birdtpu.infer.recordings import decoded, list_recordings
from birdtpu.infer.runners import open_model
from birdtpu.infer.scoring import score_against_truth
from birdtpu.infer.submission import like_sample, write_submission
from birdtpu.infer.windows import context_seconds, window_ends, windows
from birdtpu.progress import Progress


def model_paths(cfg) -> list[str]:
    """The models of `infer.model` (comma-separated), or the run's model.keras."""
    paths = [p.strip() for p in cfg.infer.model.split(",") if p.strip()]
    return paths or [join(cfg.run_dir, "model.keras")]


def score_recording(
    runner, wave: np.ndarray, window: float, hop: float = 0.0, shifts: list[float] = ()
) -> tuple[np.ndarray, list[float]]:
    """(windows x classes probabilities, end seconds) of one recording at the runner's rate.

    Each window is scored as it is and shifted by each of `shifts` seconds; the scores are averaged.
    A model with clip inputs gets those of the whole recording with each window.
    """
    rate, context = runner.meta["sample_rate"], context_seconds(runner, window)
    scores, ends, clip = [], [], recording_clip_inputs(runner, wave)
    for shift in (0.0, *shifts):
        batch, ends = windows(wave, rate, window, hop or None, context, shift)
        scores.append(runner(batch, clip))
    return np.mean(scores, axis=0, dtype=np.float64).astype(np.float32), ends


def _classes(runners) -> list[str]:
    classes = runners[0].classes
    for r in runners[1:]:
        if sorted(r.classes) != sorted(classes):
            raise DataError(
                f"{r.path}: its classes differ from those of {runners[0].path}; "
                "blended models need the same classes"
            )
    return classes


def _on_grid(runner, waves: dict, n: int, infer) -> np.ndarray:
    """The runner's scores of a recording's `n` windows (`waves`: rate -> samples); a window
    that resampling dropped at the end repeats the last one."""
    p, _ = score_recording(
        runner,
        waves[runner.meta["sample_rate"]],
        infer.window_seconds,
        infer.hop_seconds,
        infer.tta_shifts,
    )
    p = p[:n]
    return np.concatenate([p, np.repeat(p[-1:], n - len(p), axis=0)])


def predict_recordings(
    runners, paths: list[str], infer, log=print, blender=None, experts=()
) -> dict:
    """Score `paths` with `runners` (see the module docstring) into a submission-shaped table;
    `experts` (`specialists.Specialist`) are scattered into the blend before smoothing.

    Returns {table (row_id + classes), expected (the ids the predicted recordings must have, from
    their lengths), skipped [{file, reason}], partial [{file, reason}] (truncated, predicted over
    what decodes), export_checks {path: comparison}, windows, seconds, model_seconds {path:
    seconds spent scoring with that model}}.
    Models at other sample rates are fitted to the windows of the lowest rate (resampling can
    add or drop a window of a few samples at the end).
    """
    classes = _classes(runners)
    order = [[r.classes.index(c) for c in classes] for r in runners]
    every = [*runners, *(e.runner for e in experts)]
    rates = sorted({r.meta["sample_rate"] for r in every})
    ids, expected, parts, skipped, partial, checks = [], [], [], [], [], {}
    started, n_windows = time.time(), 0
    model_seconds = dict.fromkeys((r.path for r in every), 0.0)
    progress = Progress(len(paths), log, name="predict", unit="recordings")
    for path, (waves, problem) in decoded(paths, rates):
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
            for r in every:
                checks[r.path] = check_export(r, waves[r.meta["sample_rate"]], infer, log)
            started = time.time()  # the rate counts scoring, not the checks
        stem = os.path.splitext(os.path.basename(path))[0]
        grid = window_ends(
            len(waves[rates[0]]), rates[0], infer.window_seconds, infer.hop_seconds or None
        )
        rows = rowid.row_ids(stem, grid)
        expected.extend([stem] if infer.aggregate != "none" else rows)
        scores = []
        for r in every:
            tick = time.perf_counter()
            scores.append(_on_grid(r, waves, len(grid), infer))
            model_seconds[r.path] += time.perf_counter() - tick
        preds = [p[:, idx] for p, idx in zip(scores, order)]
        if blender is not None:
            probs = postprocess.stack_blend(blender, rows, classes, preds)
        else:
            probs = postprocess.mean_blend(preds)
        for e, p in zip(experts, scores[len(runners) :]):
            probs = specialists.scatter(probs, e.columns, p, e.weight)
        probs = postprocess.smooth(probs, infer.smooth)
        probs = postprocess.apply_steps({stem: probs}, infer.postprocess)[stem]
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
        "model_seconds": model_seconds,
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
    model_seconds (each model's scoring time, also logged), and macro_roc_auc (with truth_rows)
    where `<data.root>/soundscape_labels.csv` has truth for them.
    """
    inf = cfg.infer
    postprocess.check_steps(inf.postprocess)  # a bad step fails before any model is opened
    runners = [open_model(p, inf.batch_size, inf.threads, inf.streams) for p in model_paths(cfg)]
    experts = specialists.open_specialists(
        inf.specialists,
        _classes(runners),
        lambda p: open_model(p, inf.batch_size, inf.threads, inf.streams),
    )
    blender = postprocess.load_blender(inf.stacker) if inf.stacker else None
    folder = join(cfg.data.root, cfg.data.soundscape_dir)
    paths = list_recordings(folder)
    if not paths:
        raise DataError(f"{folder}: no recordings ({', '.join(AUDIO_EXTENSIONS)}) to predict")
    result = predict_recordings(runners, paths, inf, log, blender, experts)
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
        "model_seconds": result["model_seconds"],
    }
    for r in [*runners, *(e.runner for e in experts)]:
        seconds = result["model_seconds"][r.path]
        log(
            f"predict: {r.path} ({r.format}): {seconds:.1f} s scoring, "
            f"{result['windows'] / max(seconds, 1e-9):.1f} windows/s"
        )
    truth_path = join(cfg.data.root, "soundscape_labels.csv")
    if fs.exists(truth_path):
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
