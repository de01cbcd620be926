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
        line += f"; {len(summary['skipped'])} skipped: " + ", ".join(
            s["file"] for s in summary["skipped"][:3]
        )
    print(line)
    if summary["partial"]:
        print(
            f"predict: {len(summary['partial'])} truncated recording(s) predicted over the part that decodes: "
            + ", ".join(s["file"] for s in summary["partial"][:3])
        )
    if summary["skipped"]:
        from birdtpu.data.catalog import skip_summary

        print(
            skip_summary(
                "predict",
                [s["reason"] for s in summary["skipped"]],
                summary["files"] + len(summary["skipped"]),
                "recordings",
            )
        )
    return 1 if summary["skipped"] else 0
