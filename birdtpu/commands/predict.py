"""`birdtpu predict`: score soundscapes in 5-second windows and write submission.csv."""

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)


def run(args) -> int:
    cfg = config_from_args(args)
    from birdtpu.infer.predict import predict

    summary = predict(cfg, log)
    print(f"{summary['submission']}: {summary['rows']} rows")
    return 1 if summary["skipped"] else 0
