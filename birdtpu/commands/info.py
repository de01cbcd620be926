"""`birdtpu info`: versions, the backend, devices and distribution a run would use and why, and
whether tensorflow-io loads."""

import platform

PACKAGES = (
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "libtpu",
    "kapre",
    "numpy",
    "pandas",
    "soundfile",
    "soxr",
    "wandb",
    "kaggle",
)


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


def devices(backend: str) -> str:
    """The devices the backend sees, in words."""
    if backend == "jax":
        import jax

        return ", ".join(f"{d.platform}:{d.id}" for d in jax.devices())
    import tensorflow as tf

    return ", ".join(f"{d.device_type}:{d.name}" for d in tf.config.list_logical_devices())


def run(args) -> int:
    from birdtpu import __version__, backend, package_version, runtime
    from birdtpu.commands import config_from_args

    cfg = config_from_args(args)
    name, why = backend.chosen()
    lines = [f"birdtpu {__version__}, Python {platform.python_version()} on {platform.machine()}"]
    for pkg in PACKAGES:
        lines.append(f"  {pkg:<12} {package_version(pkg)}")
    lines.append(f"  tensorflow-io {tfio_status()}")
    run = runtime.setup(cfg.runtime)
    lines.append(f"backend: {name} ({why})")
    lines.append(f"devices: {devices(name)}")
    lines.append(
        f"distribution: {run.distribution}, precision {run.precision}, "
        f"XLA by default: {run.jit_default}"
    )
    print("\n".join(lines))
    return 0
