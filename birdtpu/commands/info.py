"""`birdtpu info`: versions, devices, the strategy a run would use, and whether tensorflow-io loads."""

import platform


def add_arguments(parser) -> None:
    from birdtpu.commands import add_config_arguments

    add_config_arguments(parser)


def tfio_status() -> str:
    """'loads (version)' or why tensorflow-io does not load with this TensorFlow."""
    try:
        import tensorflow_io as tfio

        tfio.audio.AudioIOTensor  # noqa: B018  (touches the op library)
        return f"loads ({tfio.__version__})"
    except Exception as err:  # NotImplementedError, ImportError, missing .so symbols
        return f"does not load ({type(err).__name__}: {str(err).splitlines()[0][:100] if str(err) else ''})"


def run(args) -> int:
    from birdtpu import __version__, package_version, runtime
    from birdtpu.commands import config_from_args

    cfg = config_from_args(args)
    import tensorflow as tf

    lines = [f"birdtpu {__version__}, Python {platform.python_version()} on {platform.machine()}"]
    for pkg in (
        "tensorflow",
        "keras",
        "kapre",
        "numpy",
        "pandas",
        "soundfile",
        "soxr",
        "wandb",
        "kaggle",
    ):
        lines.append(f"  {pkg:<12} {package_version(pkg)}")
    lines.append(f"  tensorflow-io {tfio_status()}")
    run = runtime.setup(cfg.runtime)
    devices = ", ".join(f"{d.device_type}:{d.name}" for d in tf.config.list_logical_devices())
    lines.append(f"devices: {devices}")
    lines.append(
        f"strategy: {type(run.strategy).__name__} on {run.device}, {run.replicas} replica(s), "
        f"precision {run.precision}, XLA by default: {run.jit_default}"
    )
    print("\n".join(lines))
    return 0
