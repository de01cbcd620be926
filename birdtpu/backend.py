"""Which Keras backend a run uses (`runtime.backend`), chosen and set before Keras is imported.

| runtime.backend | uses                                                                      |
|-----------------|---------------------------------------------------------------------------|
| auto            | `KERAS_BACKEND` where set; else JAX where a TPU and jax+libtpu are there; else TF |
| jax             | JAX (TPU, GPU or CPU); tf.data still feeds it                              |
| tensorflow      | TensorFlow, with its tf.distribute strategies                              |

Keras reads `KERAS_BACKEND` once, when it is first imported, so `activate` must run before any
module that imports Keras; the CLI calls it right after reading the config. Nothing here imports
Keras, TensorFlow or (unless a TPU may be there) JAX.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys

from birdtpu.errors import ConfigError

BACKENDS = ("tensorflow", "jax")
_chosen: dict[str, str] = {}  # what `activate` chose in this process, and why
TPU_ENV = ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "TPU_WORKER_HOSTNAMES", "COLAB_TPU_ADDR")


def tpu_hint() -> str:
    """Why this machine may have a TPU ('' where nothing says so): its device files or env."""
    found = glob.glob("/dev/accel[0-9]*") or glob.glob("/dev/vfio/[0-9]*")
    if found:
        return f"TPU device files ({', '.join(sorted(found)[:2])}...)"
    named = [k for k in TPU_ENV if os.environ.get(k)]
    return f"TPU environment ({', '.join(named)})" if named else ""


def jax_tpu_ready() -> bool:
    """JAX and its TPU runtime (libtpu) are installed; checked without initialising JAX, so a
    multi-host run can still call `jax.distributed.initialize` first."""
    return all(importlib.util.find_spec(m) is not None for m in ("jax", "libtpu"))


def choose(wanted: str) -> tuple[str, str]:
    """(backend, why) for `runtime.backend` = `wanted`."""
    if wanted in BACKENDS:
        return wanted, f"runtime.backend: {wanted}"
    if wanted != "auto":
        raise ConfigError(f"runtime.backend: {wanted!r} is not one of auto, {', '.join(BACKENDS)}")
    env = os.environ.get("KERAS_BACKEND", "")
    if env:
        return env, f"KERAS_BACKEND={env} (runtime.backend: auto)"
    hint = tpu_hint()
    if hint:
        if jax_tpu_ready():
            return "jax", f"{hint} and JAX with libtpu installed (runtime.backend: auto)"
        return "tensorflow", f"{hint}, but no JAX with libtpu installed (runtime.backend: auto)"
    return "tensorflow", "no TPU on this machine (runtime.backend: auto)"


def split_host_cpu(replicas: int) -> None:
    """Have XLA show `replicas` CPU devices (JAX reads XLA_FLAGS when it first initialises)."""
    flag = "--xla_force_host_platform_device_count"
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(flag)]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{flag}={replicas}"])


def activate(wanted: str, cpu_replicas: int = 1) -> tuple[str, str]:
    """Choose the backend for `wanted` and set `KERAS_BACKEND` to it (and, under JAX with
    `cpu_replicas` > 1, the host CPU split); (backend, why).

    A ConfigError where Keras was already imported with another backend, or where the chosen
    backend is not installed."""
    backend, why = choose(wanted)
    if backend not in BACKENDS:
        raise ConfigError(f"KERAS_BACKEND={backend}: birdtpu runs on {' or '.join(BACKENDS)}")
    if importlib.util.find_spec(backend) is None:
        extra = "tf" if backend == "tensorflow" else "jax"
        raise ConfigError(f"{why}: {backend} is not installed (pip install 'birdtpu[{extra}]')")
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != backend:
        raise ConfigError(
            f"{why}, but Keras was already imported with the {keras.backend.backend()} backend "
            f"in this process; set KERAS_BACKEND={backend} before starting Python"
        )
    os.environ["KERAS_BACKEND"] = backend
    _chosen.update(backend=backend, why=why)
    if backend == "jax" and cpu_replicas > 1 and "jax" not in sys.modules:
        split_host_cpu(cpu_replicas)
    return backend, why


def chosen() -> tuple[str, str]:
    """(backend, why) as `activate` chose them in this process, else as Keras was imported."""
    if _chosen:
        return _chosen["backend"], _chosen["why"]
    import keras

    return keras.backend.backend(), "as Keras was imported (KERAS_BACKEND or ~/.keras/keras.json)"
