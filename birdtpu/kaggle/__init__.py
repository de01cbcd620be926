"""Kaggle integration: the code dataset, kernel folders, and thin wrappers of the kaggle API.

Everything that can run offline is a plain function: building the code dataset folder (the
birdtpu wheel, the wheels of the requirements a Kaggle image lacks, the recipes of `configs/` and
dataset-metadata.json), checking dataset and kernel metadata, re-owning a kernel folder, extracting
a download, and finding the requirements missing from the running environment (what the kernels'
install cells call). Only `kaggle_api` imports the `kaggle` package, which authenticates at import
time; the upload functions take its result. Credentials are never printed, logged or written.

| module         | holds                                                              |
|----------------|--------------------------------------------------------------------|
| `requirements` | requirement names; what this environment or a wheel lacks          |
| `bundle`       | the code dataset folder (wheels, recipes, metadata)                |
| `metadata`     | dataset and kernel metadata checks, kernel re-owning, zip extract  |
| `api`          | the kaggle API: authenticate, push, download, submit               |
"""

from birdtpu.kaggle.api import (
    NO_CREDENTIALS,
    download,
    kaggle_api,
    push_code,
    push_kernel,
    submit,
)
from birdtpu.kaggle.bundle import (
    CODE_DATASET_SLUG,
    PROJECT_FILES,
    build_code_dataset,
    build_wheel,
    code_dataset_metadata,
    fetch_wheels,
)
from birdtpu.kaggle.metadata import (
    DATASET_LICENSES,
    DATASET_METADATA,
    KERNEL_FIELDS,
    KERNEL_FLAGS,
    KERNEL_LANGUAGES,
    KERNEL_METADATA,
    KERNEL_TYPES,
    check_dataset_metadata,
    check_kernel_metadata,
    extract_zip,
    kernel_for_owner,
)
from birdtpu.kaggle.requirements import (
    KAGGLE_IMAGE_PACKAGES,
    PACKAGE,
    TENSORFLOW_DISTRIBUTIONS,
    missing_requirements,
    requirement_name,
    wheel_requirements,
)

__all__ = [
    "CODE_DATASET_SLUG",
    "DATASET_LICENSES",
    "DATASET_METADATA",
    "KAGGLE_IMAGE_PACKAGES",
    "KERNEL_FIELDS",
    "KERNEL_FLAGS",
    "KERNEL_LANGUAGES",
    "KERNEL_METADATA",
    "KERNEL_TYPES",
    "NO_CREDENTIALS",
    "PACKAGE",
    "PROJECT_FILES",
    "TENSORFLOW_DISTRIBUTIONS",
    "build_code_dataset",
    "build_wheel",
    "check_dataset_metadata",
    "check_kernel_metadata",
    "code_dataset_metadata",
    "download",
    "extract_zip",
    "fetch_wheels",
    "kaggle_api",
    "kernel_for_owner",
    "missing_requirements",
    "push_code",
    "push_kernel",
    "requirement_name",
    "submit",
    "wheel_requirements",
]
