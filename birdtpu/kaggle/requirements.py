"""What birdtpu requires and a Kaggle image lacks: requirement names, the requirements missing from
the running environment (what the kernels' install cells call), those of a wheel."""

from __future__ import annotations

import importlib.metadata
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PACKAGE = "birdtpu"


# Distributions of the Kaggle Python image that birdtpu requires; the code dataset ships the rest.
KAGGLE_IMAGE_PACKAGES = frozenset(
    {
        "tensorflow",
        "keras",
        "numpy",
        "pandas",
        "scikit-learn",
        "scipy",
        "librosa",
        "soundfile",
        "soxr",
        "pyyaml",
        "wandb",
        "matplotlib",
        "tqdm",
    }
)
# A requirement on `tensorflow` is met by any of these (a TPU VM ships tensorflow-tpu or -cpu).
TENSORFLOW_DISTRIBUTIONS = (
    "tensorflow",
    "tensorflow-cpu",
    "tensorflow-tpu",
    "tensorflow-intel",
    "tensorflow-macos",
    "tf-nightly",
)


def requirement_name(requirement: str) -> str:
    """The canonical distribution name of a requirement string (`Kapre>=0.4` -> `kapre`)."""

    return canonicalize_name(Requirement(requirement).name)


def _active(requirements: list[str], extras: tuple[str, ...] = ()) -> list[str]:
    """The requirements that apply here without extras, or with one of `extras` (markers
    evaluated)."""

    def applies(text: str) -> bool:
        marker = Requirement(text).marker
        return marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras))

    return [r for r in requirements if applies(r)]


def _installed(name: str) -> bool:
    names = TENSORFLOW_DISTRIBUTIONS if name == "tensorflow" else (name,)
    for candidate in names:
        try:
            importlib.metadata.distribution(candidate)
            return True
        except importlib.metadata.PackageNotFoundError:
            pass
    return False


def missing_requirements(dists: list[str] | tuple[str, ...] = (PACKAGE,)) -> list[str]:
    """Requirements of the installed `dists` whose distribution is not installed at any version.

    Kaggle kernels install these with `pip install --no-deps`, so the preinstalled stack
    (TensorFlow above all, under whichever name) is never replaced.
    """
    found: dict[str, str] = {}
    for dist in dists:
        for req in _active(importlib.metadata.requires(dist) or []):
            name = requirement_name(req)
            if not _installed(name):
                found.setdefault(name, req)
    return [found[name] for name in sorted(found)]


def wheel_requirements(wheel: str | Path, extras: tuple[str, ...] = ()) -> list[str]:
    """The requirements (Requires-Dist) in a wheel's METADATA, with those of `extras`."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode("utf-8")
    lines = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    return _active(lines, tuple(extras))
