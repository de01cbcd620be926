"""The `birdtpu` command line: one verb per stage of the flow.

Each verb lives in `birdtpu/commands/<verb>.py` with `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only for the verb that runs (or whose help is shown), so `birdtpu --help`
does not import TensorFlow. TensorFlow's C++ start-up notices (CUDA factory lines, oneDNN) are
silenced unless `--verbose` is given or `BIRDTPU_VERBOSE=1` is set.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from birdtpu import __version__
from birdtpu.errors import BirdtpuError

# verb -> one-line help
VERBS: dict[str, str] = {
    "info": "versions, and the backend, devices and distribution a run would use and why",
    "synth": "write a synthetic birdsong dataset in BirdCLEF layout (clips and soundscapes)",
    "catalog": "read competition metadata into one canonical table; merge, de-duplicate, fold",
    "shard": "decode, resample and write TFRecord shards of PCM with a manifest",
    "fit": "train a model from a YAML recipe (shards are built first if missing)",
    "evaluate": "score prediction CSVs against truth with the competition metrics",
    "predict": "predict 5-second windows of soundscapes and write submission.csv",
    "pseudo": "pseudo-label unlabelled soundscapes into shards of soft targets (noisy student)",
    "embed": "embeddings and logits of a pretrained teacher (BirdNET, Perch) for every window",
    "export": "export a trained model to SavedModel or TFLite for fast CPU inference",
    "stack": "train the per-class stacking ensemble on out-of-fold predictions",
    "plot": "write PNG plots of the data, the pipeline and a run",
    "kaggle": "push code and kernels, download data and submit with the kaggle API",
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of `verb` only are loaded (all verbs are listed)."""
    parser = argparse.ArgumentParser(prog="birdtpu", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"birdtpu {__version__}")
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's start-up and C++ log lines"
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, help_text in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            module = importlib.import_module(f"birdtpu.commands.{name}")
            module.add_arguments(p)
            p.set_defaults(run=module.run)
    return parser


def quiet_tensorflow(verbose: bool) -> None:
    """Keep TensorFlow's C++ notices (CUDA factory registrations, oneDNN, CPU features) off the
    terminal, unless `verbose` or BIRDTPU_VERBOSE=1; set before TensorFlow is imported, and
    inherited by worker processes."""
    if verbose or os.environ.get("BIRDTPU_VERBOSE") == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_tensorflow("--verbose" in argv)
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
