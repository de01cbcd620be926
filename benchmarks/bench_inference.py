"""CPU inference of 5-second windows: Keras, SavedModel, TFLite, ONNX Runtime and OpenVINO side by side.

    .venv/bin/python benchmarks/bench_inference.py [--rounds 5] [--windows 64] [--batch 32] [--threads N]
        [--streams S]

The model is EfficientNetB0 at the birdclef24 recipe's input (32 kHz, 5 s, n_fft 2048, 128 mels x
384 frames, 182 classes, random weights: `model.pretrained=none`), mel frontend included in every
row. Each runtime scores the same `--windows` windows (demo soundscape windows, repeated) in calls
of `--batch`; the rounds are interleaved and each row keeps its best round, so other processes
on a shared machine disturb all rows alike. The projections are model time alone: one model on
the BirdCLEF 2024 test set (1,100 soundscapes x 48 windows), and a 5-model ensemble on the 2026
test set (600 files x 12 windows) at 4 cores, scaled linearly from the cores measured on (an
optimistic scaling where fewer than 4 were measured); decoding is measured beside it. `max |diff|`
is against the Keras model on the timed windows (random weights: near-uniform outputs, so small).

Rows: the Keras model through `model.predict` (as the skeleton ran it) and through one traced
graph (`KerasRunner`, what `predict` runs); the SavedModel export; TFLite exports as birdtpu runs
them (`--threads` single-threaded interpreters sharing each call, one window per invoke), with
the mel frontend inside the file or on the host (scipy FFT + the frontend's own layers); and,
for comparison, the usual TFLite set-up: one interpreter with `--threads` XNNPACK threads,
invoked on the whole call; ONNX Runtime and OpenVINO exports (where their extras are installed)
as birdtpu runs them (`--streams` slices of each call at once, `--threads` threads in all).

Agreement, for the trained demo model (runs/demo/model.keras from `make demo`, 64 mels x 256
frames, exported the same ways; random weights give near-uniform outputs that hide differences):
the largest |difference| to the Keras model's probabilities and the share of windows with the
Keras model's top class, on demo soundscape windows every second (168 windows: a 1-s hop over the
three 60-s demo soundscapes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from birdtpu import fs  # noqa: E402
from birdtpu.config import load_config  # noqa: E402
from birdtpu.data.audio import load_audio  # noqa: E402
from birdtpu.infer.export import export_model
from birdtpu.infer.files import read_meta  # noqa: E402
from birdtpu.infer.parity import synthetic_windows  # noqa: E402
from birdtpu.infer.recordings import list_recordings  # noqa: E402
from birdtpu.infer.runner import Runner
from birdtpu.infer.runners import KerasRunner, open_model
from birdtpu.infer.windows import windows  # noqa: E402

TEST_SET_WINDOWS = 1100 * 48
ENSEMBLE_WINDOWS, ENSEMBLE_CORES = 5 * 600 * 12, 4  # 5 models, the 2026 test set, a Kaggle CPU
DEMO_SCAPES = "demo_data/soundscapes"
DEMO_MODEL = "runs/demo/model.keras"
EXPORTS = {
    ("savedmodel", "host"): "_savedmodel",
    ("tflite", "tflite"): "_infile.tflite",
    ("tflite", "host"): "_fp32.tflite",
    ("tflite-int8", "host"): "_int8.tflite",
    ("onnx", "host"): "_onnx.onnx",
    ("onnx-int8", "host"): "_onnx_int8.onnx",
    ("openvino", "host"): "_openvino.xml",
    ("openvino", "tflite"): "_openvino_infile.xml",
    ("openvino-fp16", "host"): "_openvino_fp16.xml",
    ("openvino-int8", "host"): "_openvino_int8.xml",
}
NEEDS = {"onnx": "onnxruntime", "openvino": "openvino"}  # the optional runtime of a format
# label -> (format, frontend, threads: None for --threads)
CASES = {
    "SavedModel": ("savedmodel", "host", None),
    "TFLite fp32, mel in file": ("tflite", "tflite", None),
    "TFLite fp32, mel on host": ("tflite", "host", None),
    "TFLite fp32, mel on host, 1 thread": ("tflite", "host", 1),
    "TFLite int8, mel on host": ("tflite-int8", "host", None),
    "ONNX Runtime fp32, mel on host": ("onnx", "host", None),
    "ONNX Runtime int8, mel on host": ("onnx-int8", "host", None),
    "OpenVINO fp32, mel on host": ("openvino", "host", None),
    "OpenVINO fp32, mel in file": ("openvino", "tflite", None),
    "OpenVINO fp16 weights, mel on host": ("openvino-fp16", "host", None),
    "OpenVINO int8, mel on host": ("openvino-int8", "host", None),
}


def available(fmt: str) -> bool:
    """Whether the runtime of export format `fmt` is installed."""
    import importlib.util

    module = NEEDS.get(fmt.split("-")[0])
    return module is None or importlib.util.find_spec(module) is not None


XNNPACK_LABEL = "TFLite fp32, mel on host, XNNPACK"


class XnnpackRunner(Runner):
    """The usual set-up, for comparison: one interpreter, `threads` XNNPACK threads, whole calls."""

    def __init__(self, path: str, batch_size: int, threads: int):
        import tensorflow as tf

        from birdtpu.infer.hostmel import HostFrontend

        meta = read_meta(path)
        self.frontend = HostFrontend(meta["frontend"])
        self.interpreter = tf.lite.Interpreter(model_path=path, num_threads=threads)
        self._in = self.interpreter.get_input_details()[0]
        self._out = self.interpreter.get_output_details()[0]["index"]
        self._size = None
        super().__init__(path, meta, meta["input_shape"][-1], batch_size)

    def _run(self, batch):
        x = self.frontend(batch, workers=fs.cores())
        if self._size != len(x):
            self.interpreter.resize_tensor_input(
                self._in["index"], [len(x), *self._in["shape"][1:]]
            )
            self.interpreter.allocate_tensors()
            self._size = len(x)
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out)


def bench_model(folder: str) -> str:
    """Save the birdclef24 EfficientNetB0 (random weights) with its model.json in `folder`."""
    from birdtpu.models.registry import build_model

    cfg = load_config("configs/birdclef24.yaml", ["model.pretrained=none"])
    path = os.path.join(folder, "model.keras")
    build_model(cfg, 182).save(path)
    fs.write_json(
        os.path.join(folder, "model.json"),
        {"classes": [f"c{i:03d}" for i in range(182)], "sample_rate": 32000, "clip_seconds": 5.0},
    )
    return path


def demo_windows(hop: float, rate: int = 32000, seconds: float = 5.0) -> np.ndarray:
    """Windows of the demo soundscapes every `hop` seconds (none where there are no soundscapes)."""
    if not os.path.isdir(DEMO_SCAPES):
        return np.zeros((0, int(rate * seconds)), np.float32)
    parts = [
        windows(load_audio(p, rate)[0], rate, seconds, hop)[0] for p in list_recordings(DEMO_SCAPES)
    ]
    return np.ascontiguousarray(np.concatenate(parts))


def runners(keras_path: str, check: np.ndarray, threads: int, batch: int, streams: int = 0) -> dict:
    """{label: runner} of every row, the exports written next to `keras_path` and checked on `check`."""
    import keras

    paths = {}
    for (fmt, frontend), suffix in EXPORTS.items():
        if not available(fmt):
            continue
        paths[fmt, frontend] = keras_path.replace(".keras", suffix)
        export_model(
            keras_path,
            fmt,
            out=paths[fmt, frontend],
            frontend=frontend,
            check=check,
            batch_size=batch,
            threads=threads,
            log=lambda *_: None,
        )
    model = keras.models.load_model(keras_path, compile=False)
    out = {
        "Keras model.predict": lambda w: model.predict(w, batch_size=batch, verbose=0),
        "Keras, one traced graph": KerasRunner(keras_path, batch),
    }
    for label, (fmt, frontend, t) in CASES.items():
        if (fmt, frontend) in paths:
            out[label] = open_model(paths[fmt, frontend], batch, t or threads, streams)
    out[XNNPACK_LABEL] = XnnpackRunner(paths["tflite", "host"], batch, threads)
    return out


def decode_seconds(rate: int = 32000, seconds: float = 240.0) -> float:
    """Seconds to decode one 4-minute ogg like the test soundscapes (demo audio repeated; best of 3)."""
    import soundfile as sf

    tmp = tempfile.mkdtemp(prefix="bench-decode-")
    try:
        path = os.path.join(tmp, "scape.ogg")
        wave = demo_windows(5.0).reshape(-1)
        wave = (
            np.resize(wave, int(seconds * rate))
            if wave.size
            else np.zeros(int(seconds * rate), np.float32)
        )
        with sf.SoundFile(path, "w", rate, 1, format="OGG", subtype="VORBIS") as fh:
            for i in range(
                0, len(wave), rate
            ):  # in blocks: one 4-min Vorbis write crashes libsndfile 1.2.2
                fh.write(wave[i : i + rate])
        best = np.inf
        for _ in range(3):
            start = time.perf_counter()
            load_audio(path, rate, check=False)
            best = min(best, time.perf_counter() - start)
        return best
    finally:
        shutil.rmtree(tmp)


def demo_agreement(threads: int, batch: int, streams: int = 0) -> dict:
    """{row label: (max |difference| to the Keras model, share of demo windows with its top class)},
    plus `_windows`."""
    demo = demo_windows(1.0)
    if not os.path.exists(DEMO_MODEL) or not len(demo):
        return {}
    tmp = tempfile.mkdtemp(prefix="bench-demo-")
    try:
        keras_path = os.path.join(tmp, "model.keras")
        shutil.copy(DEMO_MODEL, keras_path)
        shutil.copy(os.path.join(os.path.dirname(DEMO_MODEL), "model.json"), tmp)
        rows = runners(keras_path, demo[:8], threads, batch, streams)
        reference = rows["Keras, one traced graph"](demo)
        out = {}
        for label, f in rows.items():
            got = np.asarray(f(demo))
            out[label] = (
                float(np.abs(got - reference).max()),
                float(np.mean(got.argmax(1) == reference.argmax(1))),
            )
        return {**out, "_windows": len(demo)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=fs.cores(), help="threads of the exports")
    parser.add_argument(
        "--streams", type=int, default=0, help="ONNX Runtime / OpenVINO streams (0: threads // 2)"
    )
    args = parser.parse_args()
    import tensorflow as tf

    tf.get_logger().setLevel(
        "ERROR"
    )  # one traced graph per runner: the retracing notes are expected
    demo = demo_windows(5.0)
    x = (
        np.resize(demo, (args.windows, demo.shape[1]))
        if len(demo)
        else synthetic_windows(160000, 32000, args.windows)
    )
    x = np.ascontiguousarray(x, np.float32)
    tmp = tempfile.mkdtemp(prefix="bench-inference-")
    try:
        rows = runners(bench_model(tmp), x[:8], args.threads, args.batch, args.streams)
        outputs = {label: np.asarray(f(x)) for label, f in rows.items()}  # warm-up: traces, packing
        diffs = {
            label: float(np.abs(y - outputs["Keras, one traced graph"]).max())
            for label, y in outputs.items()
        }
        best = dict.fromkeys(rows, 0.0)
        for _ in range(args.rounds):
            for label, f in rows.items():
                start = time.perf_counter()
                f(x)
                best[label] = max(best[label], len(x) / (time.perf_counter() - start))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    agree = demo_agreement(args.threads, args.batch, args.streams)
    decode = decode_seconds()
    keras_best = max(best["Keras model.predict"], best["Keras, one traced graph"])
    scale = ENSEMBLE_CORES / fs.cores()
    print(
        f"EfficientNetB0, 128 x 384 mel, 5-s windows at 32 kHz, mel frontend included: {len(x)} windows in calls "
        f"of {args.batch}, threads {args.threads}, streams {args.streams or 'auto'}, best of {args.rounds} "
        f"interleaved rounds, {fs.cores()} CPU cores, load average {os.getloadavg()[0]:.1f}"
    )
    head = (
        f"{'runtime':<38}{'windows/s':>10}{'x Keras':>9}{'2024, 1 model':>15}{'2026, 5 @4 cores':>18}"
        f"{'max |diff|':>12}{'demo |diff|':>13}{'demo top-1':>12}"
    )
    print(head)
    print("-" * len(head))
    for label, rate in best.items():
        diff, top = agree.get(label, ("", ""))
        if label == "Keras, one traced graph":
            diff, top = "reference", "reference"
        elif label in agree:
            diff, top = f"{diff:.1e}", f"{top:.1%}"
        print(
            f"{label:<38}{rate:>10.1f}{rate / keras_best:>9.2f}{TEST_SET_WINDOWS / rate / 60:>11.1f} min"
            f"{ENSEMBLE_WINDOWS / (rate * scale) / 60:>14.1f} min{diffs[label]:>12.1e}{diff:>13}{top:>12}"
        )
    print(
        f"x Keras: against the faster Keras row. 2024: {TEST_SET_WINDOWS:,} windows, one model; 2026, 5 @4 cores: "
        f"{ENSEMBLE_WINDOWS:,} windows (5 models x 600 files x 12), windows/s scaled by {ENSEMBLE_CORES}/"
        f"{fs.cores()} cores; model time only. Decoding a 4-min ogg takes {decode:.2f} s ({1100 * decode / 60:.1f} "
        "min for 1,100 files, in predict's decode thread beside the scoring). max |diff|: against the Keras "
        "model on the timed windows."
    )
    if agree:
        print(
            f"demo |diff|, top-1: the trained demo model ({DEMO_MODEL}, exported the same ways) on "
            f"{agree['_windows']} demo windows (1-s hop)."
        )
    else:
        print(
            f"demo |diff|, top-1: not measured ({DEMO_MODEL} or {DEMO_SCAPES} missing: run `make demo`)."
        )


if __name__ == "__main__":
    main()
