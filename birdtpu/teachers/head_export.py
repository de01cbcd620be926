"""Export an embedding_head run (`birdtpu export` on its model.keras): the head as a SavedModel,
TFLite or ONNX file.

The export holds the head only: the teacher's embeddings (n, dim) in, class probabilities out.
Its sidecar (`<stem>.json`, as every export's) keeps model.json's keys, the teacher's spec and
sha256 among them, so `open_model` on the export returns a `HeadRunner` that embeds each window
with the teacher and runs the exported head (`head_runtime.head_function`). The export is compared with the
Keras head on the teacher's embeddings of the check windows (`parity.compare`: largest absolute
difference, top-class agreement, written into the sidecar) and refused and removed when further
than `parity.FLOAT_TOLERANCE`.
"""

from __future__ import annotations

import os

import numpy as np

from birdtpu import fs, saving
from birdtpu.errors import DataError
from birdtpu.infer.files import default_path, export_sidecar, model_format, read_meta
from birdtpu.teachers.head_runtime import keras_function

FORMATS = ("savedmodel", "tflite", "onnx")


def export_head(
    model_path: str,
    fmt: str,
    out: str = "",
    frontend: str = "host",
    check: np.ndarray | None = None,
    batch_size: int = 32,
    threads: int = 0,
    log=print,
) -> dict:
    """Export the head of the embedding_head run's `.keras` file at `model_path` as `fmt` and
    check it against the Keras head (`infer.export.export_model`'s arguments; `frontend` must be
    host: a head has no mel front end). `check`: waveform windows (n, samples) at the teacher's
    rate (default: synthetic ones). Returns the sidecar written next to the export, with `path`."""
    from birdtpu.infer.export import _remove_export, _save_savedmodel, _tflite_bytes
    from birdtpu.infer.parity import FLOAT_TOLERANCE, compare, synthetic_windows
    from birdtpu.teachers.embed import window_embeddings
    from birdtpu.teachers.head import HeadRunner

    if fmt not in FORMATS:
        raise DataError(
            f"export: {model_path} is an embedding_head run: format {fmt!r} is not one of "
            f"{', '.join(FORMATS)}"
        )
    if frontend != "host":
        raise DataError(
            f"export: {model_path}: an embedding head has no mel front end to put inside"
        )
    if model_format(model_path) != "keras":
        raise DataError(f"export: {model_path}: export reads an embedding_head run's .keras file")
    meta = read_meta(model_path)
    model = saving.load_model(model_path)
    out = out or default_path(model_path, fmt)
    remote = fs.is_remote(model_path) or fs.is_remote(out)
    source = model_path if remote else os.path.relpath(model_path, os.path.dirname(out) or ".")
    side = {**meta, "format": fmt, "source": source}
    if fmt == "savedmodel":
        _save_savedmodel(model, out)
    elif fmt == "tflite":
        fs.atomic_write_bytes(out, _tflite_bytes(model, False))
    else:
        from birdtpu.infer.onnx_export import onnx_bytes

        fs.atomic_write_bytes(out, onnx_bytes(model))
    fs.write_json(export_sidecar(out), side)
    runner = HeadRunner(out, batch_size, threads)
    if check is None:
        check = synthetic_windows(runner.samples, meta["sample_rate"])
    emb, _ = window_embeddings(runner.teacher, np.asarray(check, np.float32), runner.embed_batch)
    keras_head = keras_function(model)
    # compare calls each with the windows and their clip inputs (None: a head takes none)
    side.update(compare(lambda e, _=None: keras_head(e), lambda e, _=None: runner.head(e), emb))
    fs.write_json(export_sidecar(out), side)
    if side["max_abs_diff"] > FLOAT_TOLERANCE:
        _remove_export(out)
        raise DataError(
            f"export: {out} differs from {model_path} by {side['max_abs_diff']:.2e} (over "
            f"{FLOAT_TOLERANCE}) on {side['check_windows']} windows' embeddings; removed"
        )
    log(
        f"export: {out} ({fmt}, the head on {meta['teacher']['name']} embeddings; the teacher "
        f"runs beside it): largest difference to {model_path} {side['max_abs_diff']:.2e}, same "
        f"top class on {side['top1_agreement']:.1%} of {side['check_windows']} windows"
    )
    return {**side, "path": out}
