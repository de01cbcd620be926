"""`birdtpu evaluate`: score a prediction CSV against a truth CSV with the competition metrics.

Both CSVs have `row_id` and one column per class (the submission layout); the truth holds 0 or 1.
Rows and columns are matched by name. Prints one `metric value` line per metric.
"""

from __future__ import annotations

import difflib

from birdtpu.errors import ConfigError

METRIC_NAMES = (
    "padded_cmap",
    "macro_roc_auc",
    "lwlrap",
    "lrap",
    "macro_pr_auc",
    "top1_accuracy",
    "top5_accuracy",
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--pred", required=True, metavar="CSV", help="predictions: row_id + one column per class"
    )
    parser.add_argument(
        "--truth", required=True, metavar="CSV", help="truth in the same layout, 0 or 1"
    )
    parser.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help=f"repeatable; default: all of {', '.join(METRIC_NAMES)}",
    )
    parser.add_argument(
        "--file-level",
        choices=("max", "mean"),
        help="score per soundscape: rows `<soundscape>_<end second>` are combined, predictions "
        "by max or mean over windows, truth by max",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the scores to this JSON file")


def metric_names(requested: list[str] | None) -> list[str]:
    for name in requested or ():
        if name not in METRIC_NAMES:
            near = difflib.get_close_matches(name, METRIC_NAMES, n=1)
            raise ConfigError(
                f"unknown metric {name!r}"
                + (f" (did you mean {near[0]!r}?)" if near else "")
                + f"; choose from {', '.join(METRIC_NAMES)}"
            )
    return list(requested or METRIC_NAMES)


def run(args) -> int:
    names = metric_names(args.metric)
    from birdtpu import fs
    from birdtpu.metrics import METRICS, align_tables, file_level, read_table

    truth, pred = read_table(args.truth), read_table(args.pred)
    if args.file_level:
        truth = file_level(truth, "max", args.truth)
        pred = file_level(pred, args.file_level, args.pred)
    y_true, y_score, classes = align_tables(truth, pred, (args.truth, args.pred))
    scores = {name: METRICS[name](y_true, y_score) for name in names}
    for name, value in scores.items():
        print(f"{name} {value:.6f}")
    if args.json:
        fs.write_json(
            args.json,
            {
                "pred": args.pred,
                "truth": args.truth,
                "rows": len(y_true),
                "classes": len(classes),
                "file_level": args.file_level,
                **scores,
            },
        )
    return 0
