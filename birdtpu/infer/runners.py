"""Saved models of every format behind one call: waveform windows in, class probabilities out.

| path                         | format     | runs with                                          |
|------------------------------|------------|----------------------------------------------------|
| `*.keras`                    | keras      | Keras (safe_mode), one traced graph                |
| a folder with saved_model.pb | savedmodel | `tf.saved_model.load`, its serving signature       |
| `*.tflite`                   | tflite     | `threads` TFLite interpreters (XNNPACK) in parallel|
| `*.onnx`                     | onnx       | ONNX Runtime, `streams` sessions (`runtimes.py`)   |
| `*.xml` (+ `.bin`)           | openvino   | OpenVINO CPU, `streams` requests (`runtimes.py`)   |

Each model has a JSON sidecar: `<stem>.json` next to it (what `birdtpu export` writes), else
`model.json` in its folder (what `fit` writes): classes, sample rate and clip length. A TFLite
export whose mel frontend was kept out of the file carries the frontend there; the runner
computes it on the host (`hostmel.py`) and feeds the interpreter images.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf

from birdtpu import fs, saving
from birdtpu.data.clip_features import has_clip_inputs, waveform_input
from birdtpu.errors import DataError
from birdtpu.infer.files import model_format, read_meta
from birdtpu.infer.hostmel import HostFrontend
from birdtpu.infer.runner import FRONTEND_CHUNK, Runner, input_roles, run_in_slices


def load_model(path: str):
    """A Keras model saved by `fit` (safe_mode on) and its sidecar (classes, rate, clip)."""

    meta = read_meta(path)
    if model_format(path) != "keras":
        raise DataError(f"{path}: load_model reads .keras files; use open_model for exports")
    return saving.load_model(path), meta


def _inference(model: keras.Model):
    """`model` in inference mode as one compiled function of float32 NumPy inputs (a (batch,
    samples) array, or a dict with the clip inputs) -> NumPy: a tf.function traced once for any
    batch size on the TensorFlow backend, Keras' compiled predict step on the others."""
    if keras.backend.backend() == "tensorflow":
        spec = keras.tree.map_structure(
            lambda t: tf.TensorSpec([None, *t.shape[1:]], tf.float32), model.input
        )
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        return lambda x: fn(x).numpy()
    return lambda x: np.asarray(model.predict_on_batch(x))


class KerasRunner(Runner):
    """A Keras model called in inference mode through one traced graph."""

    format = "keras"

    def __init__(self, path: str, batch_size: int = 64, model=None, meta: dict | None = None):
        if model is None:
            model, meta = load_model(path)
        if has_clip_inputs(model) != ("clip_trim_db" in meta):
            raise DataError(
                f"{path}: the model's inputs and its sidecar disagree on the clip inputs "
                "(clip_trim_db); write the sidecar again"
            )
        super().__init__(path, meta, waveform_input(model).shape[1], batch_size)
        self.model = model
        self._fn = _inference(model)

    def _run(self, batch, clip=None):
        return self._fn(batch if clip is None else {"waveform": batch, **clip})


class SavedModelRunner(Runner):
    """A SavedModel folder (`birdtpu export --format savedmodel`) through its serving signature."""

    format = "savedmodel"

    def __init__(self, path: str, batch_size: int = 64):
        meta = read_meta(path)
        saving.import_keras_modules()
        self.obj = tf.saved_model.load(path)
        signature = self.obj.signatures["serving_default"]
        inputs = signature.structured_input_signature[1]
        names = list(inputs)
        roles = input_roles(path, names, "clip_trim_db" in meta)
        main = names[roles.index("main")]
        super().__init__(path, meta, int(inputs[main].shape[-1]), batch_size)
        self._fn = lambda feeds: signature(
            **{n: tf.constant(feeds[r]) for n, r in zip(names, roles)}
        )

    def _run(self, batch, clip=None):
        (out,) = self._fn({"main": batch, **(clip or {})}).values()
        return out.numpy()


class TFLiteRunner(Runner):
    """A .tflite export under TFLite interpreters (XNNPACK for float ops).

    `threads` single-threaded interpreters share each batch, one slice each, in parallel, and
    invoke one window at a time. On 2 shared cores this measured fastest (benchmarks/
    bench_inference.py): one interpreter with several XNNPACK threads stalls at every operator's
    barrier whenever another process holds a core, and a one-window activation stays in cache.
    Where the sidecar holds a `frontend`, each slice is turned into images on the host first
    (`hostmel.HostFrontend`).
    """

    format = "tflite"

    def __init__(self, path: str, batch_size: int = 64, threads: int = 0):
        meta = read_meta(path)
        workers = threads or fs.cores()
        try:
            self.interpreters = [
                tf.lite.Interpreter(model_path=path, num_threads=1) for _ in range(workers)
            ]
        except (ValueError, RuntimeError) as err:
            raise DataError(
                f"{path}: not a readable TFLite model ({str(err).splitlines()[0][:160]})"
            ) from None
        details = self.interpreters[0].get_input_details()
        roles = input_roles(path, [d["name"] for d in details], "clip_trim_db" in meta)
        self._in = {r: d["index"] for r, d in zip(roles, details)}
        self._out = self.interpreters[0].get_output_details()[0]["index"]
        shape = details[roles.index("main")]["shape"]
        for interpreter in self.interpreters:
            for d in details:
                interpreter.resize_tensor_input(d["index"], [1, *d["shape"][1:]])
            interpreter.allocate_tensors()
        self._frontend = None
        samples = int(shape[-1])
        if meta.get("frontend"):
            saving.import_keras_modules()
            self._frontend = HostFrontend(meta["frontend"])
            samples = int(meta["input_shape"][-1])
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None
        super().__init__(path, meta, samples, batch_size)

    def _slice(self, k: int, waves: np.ndarray, clip: dict) -> np.ndarray:
        interpreter, out = self.interpreters[k], []
        for j in range(0, len(waves), FRONTEND_CHUNK):
            chunk = waves[j : j + FRONTEND_CHUNK]
            x = chunk if self._frontend is None else self._frontend(chunk)
            for i in range(len(x)):
                interpreter.set_tensor(self._in["main"], x[i : i + 1])
                for name, v in clip.items():
                    interpreter.set_tensor(self._in[name], v[j + i : j + i + 1])
                interpreter.invoke()
                out.append(interpreter.get_tensor(self._out)[0])
        return np.stack(out)

    def _run(self, batch, clip=None):
        return run_in_slices(batch, clip, len(self.interpreters), self._slice, self._pool)


def open_model(path: str, batch_size: int = 64, threads: int = 0, streams: int = 0) -> Runner:
    """A runner for a model of any format (see the module's table)."""
    if read_meta(path).get("teacher"):  # an embedding_head run: a teacher embeds each window
        from birdtpu.teachers.head import HeadRunner

        return HeadRunner(path, batch_size, threads)
    kind = model_format(path)
    if kind == "keras":
        return KerasRunner(path, batch_size)
    if kind == "savedmodel":
        return SavedModelRunner(path, batch_size)
    if kind == "tflite":
        return TFLiteRunner(path, batch_size, threads)
    from birdtpu.infer import runtimes  # ONNX Runtime and OpenVINO are optional extras

    runner = runtimes.OnnxRunner if kind == "onnx" else runtimes.OpenVinoRunner
    return runner(path, batch_size, threads, streams)
