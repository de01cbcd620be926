"""The `birdtpu` command line: one verb per stage of the flow.

Each verb lives in `birdtpu/commands/<verb>.py` with `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only for the verb that runs (or whose help is shown), so `birdtpu --help`
does not import TensorFlow. A verb whose module is not written yet says so and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from birdtpu import __version__
from birdtpu.errors import BirdtpuError

# verb -> (one-line help, the issue that builds it)
VERBS: dict[str, tuple[str, int]] = {
    "info": ("versions, devices, distribution strategy and whether tensorflow-io loads", 2),
    "synth": ("write a synthetic birdsong dataset in BirdCLEF layout (clips and soundscapes)", 2),
    "catalog": ("read competition metadata into one canonical table; merge, de-duplicate, fold", 3),
    "shard": ("decode, resample and write TFRecord shards of PCM with a manifest", 2),
    "fit": ("train a model from a YAML recipe (shards are built first if missing)", 2),
    "evaluate": ("score prediction CSVs against truth with the competition metrics", 7),
    "predict": ("predict 5-second windows of soundscapes and write submission.csv", 2),
    "export": ("export a trained model to SavedModel or TFLite for fast CPU inference", 8),
    "stack": ("train the per-class stacking ensemble on out-of-fold predictions", 9),
    "plot": ("write PNG plots of the data, the pipeline and a run", 12),
    "kaggle": ("push code and kernels, download data and submit with the kaggle API", 10),
}


def _load_verb(verb: str):
    """The module of `verb`, or None where it is not built yet."""
    name = f"birdtpu.commands.{verb}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name == name:
            return None
        raise


def _not_built(verb: str):
    def run(args) -> int:
        raise BirdtpuError(f"`birdtpu {verb}` is not built yet (issue {VERBS[verb][1]})")

    return run


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of `verb` only are loaded (all verbs are listed)."""
    parser = argparse.ArgumentParser(prog="birdtpu", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"birdtpu {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, (help_text, _issue) in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name != verb:
            continue
        module = _load_verb(name)
        if module is None:
            p.set_defaults(run=_not_built(name))
        else:
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(verb if verb in VERBS else None).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BirdtpuError as err:
        print(f"birdtpu {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"birdtpu {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
