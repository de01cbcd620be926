"""Runners of ONNX and OpenVINO IR exports: ONNX Runtime and OpenVINO on the CPU.

Each batch of windows (a whole soundscape at a time: `predict` passes all of a recording's windows
in one call) is cut into `streams` slices that run at once, each on its own session (ONNX
Runtime) or infer request (OpenVINO) with `threads // streams` threads. Where the export's
sidecar holds the mel front end, each slice is turned into images on the host first
(`hostmel.HostFrontend`), in chunks of a few windows so the STFT frames stay in cache.

Defaults (`infer.threads` 0, `infer.streams` 0): every core, and one stream per two threads (a
4-core Kaggle CPU: 2 streams of 2 threads); `benchmarks/bench_inference.py` compares settings.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from birdtpu import fs, saving
from birdtpu.errors import DataError
from birdtpu.infer.files import read_meta
from birdtpu.infer.hostmel import HostFrontend
from birdtpu.infer.runner import FRONTEND_CHUNK, Runner, input_roles, run_in_slices


def plan_threads(threads: int = 0, streams: int = 0) -> tuple[int, int]:
    """(streams, threads per stream) for `threads` in all (0: every core) and `streams` (0: one
    per two threads)."""
    threads = threads or fs.cores()
    streams = min(streams or max(1, threads // 2), threads)
    return streams, max(1, threads // streams)


class SlicedRunner(Runner):
    """A runner that feeds `_infer(k, feeds)` the slices of each batch on `streams` threads; the
    feeds (one per input of the file, `names`, of `ranks`) are the waveforms or their images and
    the clip inputs, as the file's inputs want them."""

    def __init__(
        self,
        path: str,
        meta: dict,
        names: list[str],
        ranks: list[int],
        batch_size: int,
        streams: int,
    ):
        self._frontend = None
        if meta.get("frontend"):
            saving.import_keras_modules()
            self._frontend = HostFrontend(meta["frontend"])
        self._roles = input_roles(path, names, "clip_trim_db" in meta)
        main = ranks[self._roles.index("main")]
        if main not in (2, 4) or (main == 2) != (self._frontend is None):
            raise DataError(
                f"{path}: inputs of ranks {ranks} do not fit the sidecar's front end "
                f"({'on the host' if self._frontend else 'in the file'}); export it again"
            )
        self.streams = streams
        self._pool = ThreadPoolExecutor(streams) if streams > 1 else None
        super().__init__(path, meta, meta["input_shape"][-1], batch_size)

    def _feeds(self, waves: np.ndarray, clip: dict) -> list[np.ndarray]:
        if self._frontend is None:
            main = waves
        else:
            main = np.concatenate(
                [
                    self._frontend(waves[j : j + FRONTEND_CHUNK])
                    for j in range(0, len(waves), FRONTEND_CHUNK)
                ]
            )
        return [main if role == "main" else clip[role] for role in self._roles]

    def _infer(self, k: int, feeds: list[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _slice(self, k: int, waves: np.ndarray, clip: dict) -> np.ndarray:
        return self._infer(k, self._feeds(waves, clip))

    def _run(self, batch, clip=None):
        return run_in_slices(batch, clip, self.streams, self._slice, self._pool)


def _import(module: str, extra: str, path: str):
    try:
        return __import__(module)
    except ImportError:
        raise DataError(
            f"{path}: running it needs {module}: pip install 'birdtpu[{extra}]'"
        ) from None


class OnnxRunner(SlicedRunner):
    """An .onnx export under ONNX Runtime (CPU), one session per stream."""

    format = "onnx"

    def __init__(self, path: str, batch_size: int = 64, threads: int = 0, streams: int = 0):
        ort = _import("onnxruntime", "onnx", path)
        meta = read_meta(path)
        streams, per_stream = plan_threads(threads, streams)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = per_stream, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        data = fs.read_bytes(path)
        try:
            self.sessions = [
                ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
                for _ in range(streams)
            ]
        except Exception as err:  # onnxruntime raises its own error types for a bad file
            raise DataError(
                f"{path}: not a readable ONNX model ({str(err).splitlines()[0][:160]})"
            ) from None
        inputs = self.sessions[0].get_inputs()
        self._names = [i.name for i in inputs]
        ranks = [len(i.shape) for i in inputs]
        super().__init__(path, meta, self._names, ranks, batch_size, streams)

    def _infer(self, k, feeds):
        return self.sessions[k].run(None, dict(zip(self._names, feeds)))[0]


class OpenVinoRunner(SlicedRunner):
    """An OpenVINO IR export (.xml + .bin) on the CPU plugin: one compiled model with `streams`
    streams and `threads` threads in all, float32 precision, one infer request per stream."""

    format = "openvino"

    def __init__(self, path: str, batch_size: int = 64, threads: int = 0, streams: int = 0):
        ov = _import("openvino", "openvino", path)
        meta = read_meta(path)
        if fs.is_remote(path):
            raise DataError(f"{path}: OpenVINO reads local files; copy the .xml and .bin here")
        streams, per_stream = plan_threads(threads, streams)
        try:
            self.compiled = ov.Core().compile_model(
                path,
                "CPU",
                {
                    "INFERENCE_NUM_THREADS": per_stream * streams,
                    "NUM_STREAMS": streams,
                    "INFERENCE_PRECISION_HINT": "f32",
                },
            )
        except RuntimeError as err:
            raise DataError(
                f"{path}: not a readable OpenVINO model ({str(err).splitlines()[0][:160]})"
            ) from None
        self.requests = [self.compiled.create_infer_request() for _ in range(streams)]
        inputs = self.compiled.inputs
        ranks = [i.get_partial_shape().rank.get_length() for i in inputs]
        names = [i.get_any_name() for i in inputs]
        super().__init__(path, meta, names, ranks, batch_size, streams)

    def _infer(self, k, feeds):
        request = self.requests[k]
        request.infer(dict(enumerate(feeds)))
        return request.get_output_tensor(0).data.copy()
