"""`birdtpu synth`: write the synthetic birdsong dataset."""

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", help="dataset root (default: data.root of the config)")


def run(args) -> int:
    from birdtpu.data.synth import write_dataset

    cfg = config_from_args(args)
    write_dataset(args.out or cfg.data.root, cfg.synth, log=log)
    return 0
