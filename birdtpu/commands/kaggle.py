"""`birdtpu kaggle`: push the code dataset and kernels, download competition data, submit.

Local checks come first and need no credentials; the kaggle package is imported (and so
authenticates) only inside `birdtpu.kaggle.kaggle_api`.
"""

from __future__ import annotations

import argparse

from birdtpu import __version__
from birdtpu.errors import BirdtpuError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sub-verbs push-code, push-kernel, download and submit."""
    sub = parser.add_subparsers(dest="kaggle_verb", metavar="SUBVERB", required=True)

    p = sub.add_parser(
        "push-code",
        help="build the code dataset (wheels, recipes) and create or version it",
        description="Build the birdtpu wheel (offline), with --with-deps the wheels of the "
        "requirements a Kaggle image lacks, copy configs/*.yaml, write dataset-metadata.json, "
        "then create the dataset or a new version of it.",
    )
    p.add_argument("--id", help="OWNER/SLUG of the dataset (default: <your username>/birdtpu-code)")
    p.add_argument("--src", default=".", help="the birdtpu checkout to build (default: .)")
    p.add_argument(
        "--out",
        default="build/kaggle-code",
        help="the dataset folder to write (default: %(default)s)",
    )
    p.add_argument(
        "--with-deps",
        action="store_true",
        help="add wheels of the requirements a Kaggle image lacks",
    )
    p.add_argument("--find-links", metavar="DIR", help="take those wheels from DIR only (offline)")
    p.add_argument(
        "--extras",
        default="",
        metavar="NAME,...",
        help="with --with-deps, also ship birdtpu's extras and what they need, e.g. onnx,openvino "
        "(the CPU inference kernel runs an OpenVINO or ONNX ensemble from them)",
    )
    p.add_argument(
        "--notes", default=f"birdtpu {__version__}", help="version notes (default: %(default)s)"
    )
    p.add_argument(
        "--public", action="store_true", help="make a new dataset public (default: private)"
    )
    p.add_argument(
        "--build-only", action="store_true", help="write the folder, upload nothing (needs --id)"
    )

    p = sub.add_parser(
        "push-kernel", help="push a kernel folder (kernel-metadata.json), which runs it"
    )
    p.add_argument("folder", help="e.g. kernels/birdclef24-train-tpu")
    p.add_argument(
        "--owner",
        help="Kaggle account to push to (default: yours); the folder's own sources follow",
    )
    p.add_argument(
        "--accelerator", help="machine shape overriding the metadata, e.g. TpuV5E8, NvidiaTeslaT4"
    )

    p = sub.add_parser("download", help="download and extract a competition's data")
    p.add_argument(
        "competition", nargs="?", default="birdclef-2024", help="slug (default: %(default)s)"
    )
    p.add_argument("--path", help="destination folder (default: data/<competition>)")
    p.add_argument(
        "--force", action="store_true", help="download and extract into a folder that has files"
    )

    p = sub.add_parser(
        "submit", help="submit a file, or a kernel's output file for code competitions"
    )
    p.add_argument(
        "file", help="submission CSV; with --kernel, the name of the file the kernel writes"
    )
    p.add_argument(
        "-c", "--competition", default="birdclef-2024", help="slug (default: %(default)s)"
    )
    p.add_argument(
        "-m", "--message", default=f"birdtpu {__version__}", help="submission description"
    )
    p.add_argument(
        "--kernel", metavar="OWNER/SLUG", help="submit this kernel's output (code competitions)"
    )
    p.add_argument("--kernel-version", type=int, help="the kernel version (default: the latest)")


def _push_code(args) -> None:
    from birdtpu import kaggle

    if args.extras and not args.with_deps:
        raise BirdtpuError("--extras ships the extras' wheels: it needs --with-deps")
    if args.build_only and not args.id:
        raise BirdtpuError("--build-only needs --id OWNER/SLUG (no account is asked for the owner)")
    if args.id:
        kaggle.code_dataset_metadata(args.id)  # checks the id before anything slow
    api = None if args.build_only else kaggle.kaggle_api()
    dataset_id = args.id or f"{api.get_config_value('username')}/{kaggle.CODE_DATASET_SLUG}"
    folder = kaggle.build_code_dataset(
        args.out,
        dataset_id,
        src=args.src,
        with_deps=args.with_deps,
        find_links=args.find_links,
        extras=tuple(e for e in args.extras.split(",") if e),
    )
    print(
        f"code dataset {dataset_id}: {', '.join(sorted(p.name for p in folder.iterdir()))} in {folder}"
    )
    if api is not None:
        url = kaggle.push_code(folder, notes=args.notes, public=args.public, connect=lambda: api)
        print(f"pushed {dataset_id}: {url}")


def run(args) -> int:
    """Dispatch to the sub-verb."""
    from birdtpu import kaggle

    if args.kaggle_verb == "push-code":
        _push_code(args)
    elif args.kaggle_verb == "push-kernel":
        print(
            f"pushed {args.folder}: {kaggle.push_kernel(args.folder, owner=args.owner, accelerator=args.accelerator)}"
        )
    elif args.kaggle_verb == "download":
        dest = args.path or f"data/{args.competition}"
        print(
            f"{args.competition}: {kaggle.download(args.competition, dest, force=args.force)} files in {dest}"
        )
    else:
        print(
            kaggle.submit(
                args.file,
                competition=args.competition,
                message=args.message,
                kernel=args.kernel,
                kernel_version=args.kernel_version,
            )
        )
    return 0
