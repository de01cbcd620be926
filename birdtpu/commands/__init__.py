"""CLI verbs: one module per verb with `add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import sys


def add_config_arguments(parser) -> None:
    """--cfg FILE and repeatable --set KEY=VALUE."""
    parser.add_argument("--cfg", metavar="YAML", help="recipe file (default: built-in defaults)")
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config field, e.g. --set train.epochs=3 (repeatable)",
    )


def config_from_args(args, backend: bool = True):
    """The validated config of --cfg and --set, with its Keras backend set (before any verb
    imports Keras) unless `backend` is False (a verb without Keras: `shard`)."""
    from birdtpu.backend import activate
    from birdtpu.config import load_config

    cfg = load_config(args.cfg, args.overrides)
    if backend:
        activate(cfg.runtime.backend, cfg.runtime.cpu_replicas)
    return cfg


def log(message: str) -> None:
    """One progress line on stderr (plain lines: readable in CI and Kaggle logs)."""
    print(message, file=sys.stderr, flush=True)
