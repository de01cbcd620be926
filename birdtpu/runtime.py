"""Where a run executes: backend, devices, distribution, precision policy and seeds.

Under TensorFlow a run uses a tf.distribute strategy (TPUStrategy, MirroredStrategy over the GPUs
or split CPU devices, MultiWorkerMirroredStrategy from TF_CONFIG). Under JAX it uses every local
device with `keras.distribution.DataParallel` (the batch split across them, weights replicated),
several hosts joined by `jax.distributed.initialize`; XLA always. The backend itself is chosen
before Keras is imported (`birdtpu.backend`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass

from birdtpu.errors import ConfigError

# a JAX run spanning hosts: the coordinator is named, or a TPU pod slice lists its workers
MULTIHOST_ENV = ("JAX_COORDINATOR_ADDRESS",)


@dataclass
class Runtime:
    """The strategy a run uses and what it was chosen from."""

    strategy: object  # a tf.distribute strategy, or JaxStrategy
    device: str  # tpu | gpu | cpu
    replicas: int
    precision: str
    workers: int = 1  # processes of a multi-worker (TF_CONFIG) or multi-host (JAX) run, else 1
    chief: bool = True  # the worker that writes the run folder (others write to a temporary one)
    backend: str = "tensorflow"

    @property
    def jit_default(self) -> bool:
        """XLA on by default where it pays off (TPU always compiles; GPU benefits; CPU compiles
        slowly under TensorFlow). JAX always compiles."""
        return self.backend == "jax" or self.device in ("tpu", "gpu")

    @property
    def distribution(self) -> str:
        """The distribution in words, for logs and `birdtpu info`."""
        name = type(self.strategy).__name__.lstrip("_")
        if self.backend == "jax":
            name = "DataParallel" if self.replicas > 1 else "one device"
        elif name == "DefaultDistributionStrategy":
            name = "no tf.distribute strategy"
        workers = f" on {self.workers} workers" if self.workers > 1 else ""
        return f"{name} over {self.replicas} {self.device} device(s){workers}"


class JaxStrategy:
    """What fit asks of a strategy, under JAX: a scope (the distribution is global) and the
    number of devices a batch is split over."""

    def __init__(self, devices: int):
        self.num_replicas_in_sync = devices

    def scope(self):
        return contextlib.nullcontext()


def _tpu_strategy():
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None
    return tf.distribute.TPUStrategy(resolver)


def cluster() -> tuple[int, bool]:
    """(workers, chief) of the TF_CONFIG cluster, (1, True) without one.

    Workers are the `chief` and `worker` tasks; the chief is the `chief` task, else worker 0."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return 1, True
    try:
        tf_config = json.loads(text)
        jobs, task = tf_config.get("cluster", {}), tf_config.get("task", {})
        workers = len(jobs.get("chief", [])) + len(jobs.get("worker", []))
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            'TF_CONFIG: expected JSON {"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": i}}'
        ) from None
    chief = kind == "chief" or (kind == "worker" and index == 0 and not jobs.get("chief"))
    return workers, chief


def split_cpu(replicas: int) -> list[str]:
    """Split the CPU into `replicas` logical devices (before TensorFlow initialises them)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if not current or len(current) != replicas:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * replicas
            )
        except RuntimeError:
            raise ConfigError(
                f"runtime.cpu_replicas: cannot split the CPU into {replicas} devices after "
                "TensorFlow has initialised; set it before anything else runs"
            ) from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def choose_device(wanted: str) -> str:
    """The device kind for `wanted` (auto: TPU, else GPU, else CPU)."""
    import tensorflow as tf

    if wanted in ("auto", "tpu") and (
        os.environ.get("TPU_NAME")
        or os.environ.get("COLAB_TPU_ADDR")
        or os.path.exists("/dev/accel0")
        or wanted == "tpu"
    ):
        return "tpu"
    if wanted in ("auto", "gpu") and tf.config.list_physical_devices("GPU"):
        return "gpu"
    if wanted == "gpu":
        raise ConfigError("runtime.device: gpu asked for, but TensorFlow sees no GPU")
    return "cpu"


def precision_for(device: str, wanted: str) -> str:
    """The Keras dtype policy: bf16 on TPU, fp16 on GPU, fp32 on CPU unless set."""
    if wanted != "auto":
        return wanted
    return {"tpu": "mixed_bfloat16", "gpu": "mixed_float16"}.get(device, "float32")


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally make TF ops (and tf.data's order)
    deterministic. JAX's ops are deterministic on CPU and TPU."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        tf.config.experimental.enable_op_determinism()


def setup(cfg) -> Runtime:
    """Seeds, strategy or distribution, and precision policy from a RuntimeConfig."""
    import keras
    import tensorflow as tf

    if keras.backend.backend() == "jax":
        return _jax_setup(cfg)
    workers, chief = cluster()
    if workers > 1:  # collectives must be configured before TensorFlow initialises anything else
        return _multi_worker(cfg, workers, chief)
    device = choose_device(cfg.device)
    cpu_devices = split_cpu(cfg.cpu_replicas) if device == "cpu" and cfg.cpu_replicas > 1 else None
    set_seed(cfg.seed, cfg.deterministic)
    strategy = _tpu_strategy() if device == "tpu" else None
    if device == "tpu" and strategy is None:
        if cfg.device == "tpu":
            raise ConfigError(
                "runtime.device: tpu asked for, but no TPU answered TPUClusterResolver"
            )
        device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    if strategy is None:
        if device == "gpu":
            strategy = tf.distribute.MirroredStrategy()
        elif cpu_devices:
            strategy = tf.distribute.MirroredStrategy(devices=cpu_devices)
        else:
            strategy = tf.distribute.get_strategy()
    precision = precision_for(device, cfg.precision)
    keras.mixed_precision.set_global_policy(precision)
    return Runtime(strategy, device, strategy.num_replicas_in_sync, precision)


def _multi_worker_strategy():
    """tf.distribute.MultiWorkerMirroredStrategy with the two things Keras 3's fit asks of
    `reduce` that the stock one refuses (keras-team/keras#20585): a nested structure (fit reduces
    a whole (wave, target) batch to build the model: "Attempt to convert a value (PerReplica...)"),
    and `axis=0` on a scalar (fit averages each step's metrics so: "Invalid reduction dimension 0
    for input with 0 dimensions"), which is reduced across replicas, as under MirroredStrategy."""
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            parent = super().reduce

            def one(v):
                scalar = (
                    axis == 0
                    and getattr(self.experimental_local_results(v)[0], "shape", None) == ()
                )
                return parent(reduce_op, v, None if scalar else axis)

            return tf.nest.map_structure(one, value)

    return MultiWorkerMirroredStrategy()


def _multi_worker(cfg, workers: int, chief: bool) -> Runtime:
    """MultiWorkerMirroredStrategy over the TF_CONFIG cluster: every local GPU, else the CPU."""
    import keras
    import tensorflow as tf

    if cfg.device == "tpu":
        raise ConfigError(
            "runtime.device: tpu runs on a TPU pod through TPUClusterResolver, not TF_CONFIG; "
            "unset TF_CONFIG or choose gpu/cpu/auto"
        )
    if cfg.cpu_replicas > 1:
        raise ConfigError(
            f"runtime.cpu_replicas: {cfg.cpu_replicas} with a {workers}-worker TF_CONFIG: "
            "a multi-worker run uses one CPU device per worker; set it to 1"
        )
    strategy = _multi_worker_strategy()
    device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    if cfg.device == "gpu" and device != "gpu":
        raise ConfigError("runtime.device: gpu asked for, but TensorFlow sees no GPU")
    set_seed(cfg.seed, cfg.deterministic)
    precision = precision_for(device, cfg.precision)
    keras.mixed_precision.set_global_policy(precision)
    return Runtime(strategy, device, strategy.num_replicas_in_sync, precision, workers, chief)


def _jax_devices(wanted: str, cpu_replicas: int):
    """(kind, local devices) of a JAX run for `runtime.device` = `wanted`: every TPU, else every
    GPU, else `cpu_replicas` CPU devices (one unless the CPU is split, as under TensorFlow)."""
    import jax

    kinds = ("tpu", "gpu", "cpu") if wanted == "auto" else (wanted,)
    for kind in kinds:
        try:
            devices = jax.local_devices(backend=kind)
        except RuntimeError:
            continue
        if kind == "cpu":
            if len(devices) < cpu_replicas:
                raise ConfigError(
                    f"runtime.cpu_replicas: {cpu_replicas}, but JAX has {len(devices)} CPU "
                    "device(s); set it before JAX initialises (birdtpu's CLI does) or set "
                    f"XLA_FLAGS=--xla_force_host_platform_device_count={cpu_replicas}"
                )
            devices = devices[:cpu_replicas]
        return kind, devices
    raise ConfigError(f"runtime.device: {wanted} asked for, but JAX sees no {wanted.upper()}")


def _jax_setup(cfg) -> Runtime:
    """JAX: every local device (DataParallel where there are several), all hosts of a
    multi-host run, bf16 on TPU."""
    import jax
    import keras

    if any(os.environ.get(k) for k in MULTIHOST_ENV) and not jax.distributed.is_initialized():
        jax.distributed.initialize()
    device, local = _jax_devices(cfg.device, cfg.cpu_replicas)
    hosts = jax.process_count()
    devices = [d for d in jax.devices() if d.platform == device] if hosts > 1 else local
    set_seed(cfg.seed, cfg.deterministic)
    if len(devices) > 1:
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    precision = precision_for(device, cfg.precision)
    keras.mixed_precision.set_global_policy(precision)
    return Runtime(
        JaxStrategy(len(devices)),
        device,
        len(devices),
        precision,
        workers=hosts,
        chief=jax.process_index() == 0,
        backend="jax",
    )


def barrier(run: Runtime) -> None:
    """Wait until every worker of a multi-worker run gets here (an all-reduce); no-op otherwise."""
    if run.workers > 1 and run.backend == "jax":
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("birdtpu")
    elif run.workers > 1:
        import tensorflow as tf

        one = run.strategy.run(lambda: tf.constant(1.0))
        run.strategy.reduce(tf.distribute.ReduceOp.SUM, one, axis=None)
