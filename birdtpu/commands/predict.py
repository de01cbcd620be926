"""`birdtpu predict`: score soundscapes in windows and write a validated submission.csv."""

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)


def run(args) -> int:
    cfg = config_from_args(args)
    from birdtpu.infer.predict import predict

    summary = predict(cfg, log)
    line = f"{summary['submission']}: {summary['rows']} rows of {summary['files']} recordings"
    if summary["skipped"]:
        line += f"; {len(summary['skipped'])} skipped: " + ", ".join(s["file"] for s in summary["skipped"][:3])
    print(line)
    return 1 if summary["skipped"] else 0
