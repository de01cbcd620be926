"""Where a run executes: distribution strategy, precision policy and seeds."""

from __future__ import annotations

import os
from dataclasses import dataclass

from birdtpu.errors import ConfigError


@dataclass
class Runtime:
    """The strategy a run uses and what it was chosen from."""

    strategy: object
    device: str  # tpu | gpu | cpu
    replicas: int
    precision: str

    @property
    def jit_default(self) -> bool:
        """XLA on by default where it pays off (TPU always compiles; GPU benefits; CPU compiles slowly)."""
        return self.device in ("tpu", "gpu")


def _tpu_strategy():
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        return None
    return tf.distribute.TPUStrategy(resolver)


def split_cpu(replicas: int) -> list[str]:
    """Split the CPU into `replicas` logical devices (before TensorFlow initialises them)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if not current or len(current) != replicas:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        except RuntimeError:
            raise ConfigError(f"runtime.cpu_replicas: cannot split the CPU into {replicas} devices after "
                              "TensorFlow has initialised; set it before anything else runs") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def choose_device(wanted: str) -> str:
    """The device kind for `wanted` (auto: TPU, else GPU, else CPU)."""
    import tensorflow as tf

    if wanted in ("auto", "tpu") and (os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")
                                      or os.path.exists("/dev/accel0") or wanted == "tpu"):
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
    """Seed Python, NumPy, TensorFlow and Keras; optionally make TF ops deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def setup(cfg) -> Runtime:
    """Seeds, strategy and precision policy from a RuntimeConfig."""
    import keras
    import tensorflow as tf

    device = choose_device(cfg.device)
    cpu_devices = split_cpu(cfg.cpu_replicas) if device == "cpu" and cfg.cpu_replicas > 1 else None
    set_seed(cfg.seed, cfg.deterministic)
    strategy = _tpu_strategy() if device == "tpu" else None
    if device == "tpu" and strategy is None:
        if cfg.device == "tpu":
            raise ConfigError("runtime.device: tpu asked for, but no TPU answered TPUClusterResolver")
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
