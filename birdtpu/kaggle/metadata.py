"""Kaggle folders: dataset and kernel metadata checked as the kaggle CLI needs them, a kernel folder
re-owned, a download extracted."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

from birdtpu.errors import BirdtpuError

DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"


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


def split_ref(ref: str, what: str) -> tuple[str, str]:
    """('owner', 'slug') of 'owner/slug', or BirdtpuError."""
    parts = str(ref).split("/")
    if len(parts) != 2 or not all(parts):
        raise BirdtpuError(f"{what} {ref!r}: expected OWNER/SLUG")
    return parts[0], parts[1]


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
