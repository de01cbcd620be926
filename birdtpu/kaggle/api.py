"""Thin wrappers of the kaggle API: authentication, pushing the code dataset and kernels,
downloading competition files, submitting.

Only `kaggle_api` imports the `kaggle` package, and only when called: it authenticates at import
time, so importing it is part of connecting. The other functions take its result through their
`connect` argument. Credentials are never printed, logged or written.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

from birdtpu.errors import BirdtpuError
from birdtpu.kaggle.metadata import (
    check_dataset_metadata,
    check_kernel_metadata,
    extract_zip,
    kernel_for_owner,
    split_ref,
)

NO_CREDENTIALS = (
    "no Kaggle credentials: put kaggle.json (kaggle.com > Settings > API > Create New "
    "Token) in ~/.kaggle/ or $KAGGLE_CONFIG_DIR, or set KAGGLE_USERNAME and KAGGLE_KEY"
)


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
        split_ref(kernel, "kernel")
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
