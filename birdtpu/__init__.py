"""birdtpu: bird-call classifiers with Keras 3 and TensorFlow on TPUs, GPUs and CPUs."""

__version__ = "0.1.0"


def package_version(name: str) -> str:
    """The installed version of distribution `name`, or 'not installed'."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
