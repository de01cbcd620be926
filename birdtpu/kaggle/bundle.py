"""The code dataset: the birdtpu wheel, the wheels of the requirements a Kaggle image lacks, the
recipes of `configs/` and dataset-metadata.json, built offline into one folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement

from birdtpu import __version__
from birdtpu.errors import BirdtpuError
from birdtpu.kaggle.metadata import DATASET_METADATA, split_ref
from birdtpu.kaggle.requirements import (
    KAGGLE_IMAGE_PACKAGES,
    PACKAGE,
    requirement_name,
    wheel_requirements,
)

CODE_DATASET_SLUG = "birdtpu-code"  # kernels attach it as /kaggle/input/birdtpu-code
PROJECT_FILES = ("setup.cfg", "setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")


def _pip(*args: str) -> None:
    """Run pip of this interpreter quietly; BirdtpuError with pip's last line on failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        raise BirdtpuError(
            f"pip {args[0]} failed: {lines[-1].strip() if lines else proc.returncode}"
        )


def build_wheel(src: str | Path, dest: str | Path) -> Path:
    """Build the birdtpu wheel of the checkout `src` into `dest`, offline; its path.

    The sources are copied to a temporary folder first, so the checkout gets no build/ folder.
    Needs setuptools>=64 and wheel in this environment (the build is not isolated).
    """
    src = Path(src)
    if not (src / "setup.cfg").is_file() or not (src / PACKAGE).is_dir():
        raise BirdtpuError(
            f"{src}: not a birdtpu checkout (no setup.cfg and {PACKAGE}/); pass --src"
        )
    with tempfile.TemporaryDirectory(prefix="birdtpu-src-") as tmp:
        for name in PROJECT_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp)
        shutil.copytree(
            src / PACKAGE,
            Path(tmp) / PACKAGE,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dest), tmp)
    wheels = sorted(Path(dest).glob(f"{PACKAGE}-*.whl"))
    if len(wheels) != 1:
        raise BirdtpuError(f"{dest}: expected one {PACKAGE} wheel, found {len(wheels)}")
    return wheels[0]


def fetch_wheels(requirements: list[str], dest: str | Path, find_links: str | None = None) -> None:
    """Put a wheel of each requirement (without its dependencies) into `dest`.

    From the package index, or only from the folder `find_links` where given (offline).
    """
    if requirements:
        source = ["--no-index", "--find-links", str(find_links)] if find_links else []
        _pip("wheel", "--no-deps", *source, "-w", str(dest), *requirements)


def fetch_closure(
    requirements: list[str], dest: str | Path, find_links: str | None, skip: frozenset[str]
) -> None:
    """`fetch_wheels` for `requirements` and, round by round, for what the fetched wheels require,
    leaving out the distributions named in `skip` (what the Kaggle image has)."""
    seen: set[str] = set()
    while requirements:
        batch = {}
        for r in requirements:
            name = requirement_name(r)
            if name not in seen and name not in skip:  # markers were evaluated: pip gets none
                batch.setdefault(name, f"{name}{Requirement(r).specifier}")
        seen |= set(batch)
        before = set(Path(dest).glob("*.whl"))
        fetch_wheels(list(batch.values()), dest, find_links)
        requirements = [
            r for w in sorted(set(Path(dest).glob("*.whl")) - before) for r in wheel_requirements(w)
        ]


def code_dataset_metadata(dataset_id: str) -> dict:
    """dataset-metadata.json of the code dataset `dataset_id` (OWNER/SLUG)."""
    split_ref(dataset_id, "dataset id")
    return {
        "title": "birdtpu code",
        "id": dataset_id,
        "subtitle": "birdtpu wheels and recipes for Kaggle notebooks without internet",
        "description": (
            f"birdtpu {__version__}: its wheel, the wheels of the requirements the Kaggle image lacks, "
            "and the YAML recipes of configs/. Install without touching the preinstalled TensorFlow: "
            f"`pip install --no-index --no-deps /kaggle/input/{dataset_id.split('/')[1]}/*.whl`. "
            "birdtpu is MIT-licensed; each dependency wheel keeps its own licence."
        ),
        "licenses": [{"name": "other"}],
        "keywords": [],
    }


def build_code_dataset(
    out: str | Path,
    dataset_id: str,
    *,
    src: str | Path = ".",
    with_deps: bool = False,
    find_links: str | None = None,
    extras: tuple[str, ...] = (),
) -> Path:
    """Write the code dataset folder `out` and return it; replaces an earlier code dataset there.

    It holds the birdtpu wheel of the checkout `src`, with `with_deps` the wheels of birdtpu's
    requirements that a Kaggle image lacks, with those of birdtpu's `extras` (e.g. onnx, openvino)
    and, round by round, what those wheels require (from the index, or from `find_links` offline), the
    recipes `configs/*.yaml` and dataset-metadata.json. Built in a temporary folder, then renamed.
    """
    meta = code_dataset_metadata(dataset_id)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / DATASET_METADATA).is_file():
        raise BirdtpuError(f"{out}: not empty and not a code dataset; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        wheel = build_wheel(src, tmp)
        if with_deps:
            reqs = wheel_requirements(wheel, tuple(extras))
            fetch_closure(reqs, tmp, find_links, KAGGLE_IMAGE_PACKAGES | {PACKAGE})
        for recipe in sorted(Path(src, "configs").glob("*.yaml")):
            shutil.copy2(recipe, tmp)
        (tmp / DATASET_METADATA).write_text(json.dumps(meta, indent=2) + "\n")
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
