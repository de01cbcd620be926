"""`birdtpu plot`: PNG plots of the data, the pipeline and a run (birdtpu.plots).

| sub-verb      | reads                               | default output                            |
|---------------|-------------------------------------|-------------------------------------------|
| classes       | --table CSV, or the recipe's catalog | `<table>.classes.png`, `<run>/plots/`     |
| spectrograms  | the recipe's shards (built if missing) | `<run>/plots/spectrograms.png`         |
| history       | `<run>/history.csv`                 | `<run>/plots/history.png`                 |
| scores        | --pred and --truth CSVs             | `<pred>.scores.png`                       |
| timeline      | --submission CSV                    | `<submission>.<soundscape>.timeline.png`  |
"""

from __future__ import annotations

from birdtpu.commands import add_config_arguments, config_from_args, log
from birdtpu.errors import ConfigError

SCORES = ("roc_auc", "average_precision", "lwlrap")  # birdtpu.plots.SCORE_COLUMNS, without pandas


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="plot_verb", metavar="SUBVERB", required=True)

    p = sub.add_parser(
        "classes", help="rows per class (long tail) by source and fold, with sampling thresholds"
    )
    add_config_arguments(p)
    p.add_argument(
        "--table",
        metavar="CSV",
        help="a table from `birdtpu catalog --out` (default: the recipe's "
        "catalog, sampled and folded as `fit` reads it)",
    )
    p.add_argument(
        "--min",
        type=int,
        default=0,
        metavar="N",
        help="mark an upsample threshold (data.min_per_class)",
    )
    p.add_argument(
        "--max",
        type=int,
        default=0,
        metavar="N",
        help="mark a downsample threshold (--max-per-class)",
    )
    p.add_argument("--out", metavar="PNG")

    p = sub.add_parser(
        "spectrograms", help="frontend images per class from the pipeline, clean and augmented"
    )
    add_config_arguments(p)
    p.add_argument(
        "--per-class", type=int, default=2, metavar="K", help="clips per class and kind (default 2)"
    )
    p.add_argument(
        "--class",
        dest="classes",
        action="append",
        metavar="NAME",
        help="a class to show (repeatable; default: the first --max-classes)",
    )
    p.add_argument(
        "--max-classes", type=int, default=12, metavar="N", help="rows without --class (default 12)"
    )
    p.add_argument("--out", metavar="PNG")

    p = sub.add_parser("history", help="loss, metrics and learning rate of a run (history.csv)")
    p.add_argument(
        "--run", dest="run_dir", required=True, metavar="DIR", help="a run folder with history.csv"
    )
    p.add_argument("--out", metavar="PNG")

    p = sub.add_parser(
        "scores", help="per-class ROC-AUC, average precision and lwlrap; the worst classes"
    )
    p.add_argument(
        "--pred", required=True, metavar="CSV", help="predictions: row_id + one column per class"
    )
    p.add_argument("--truth", required=True, metavar="CSV", help="truth in the same layout, 0 or 1")
    p.add_argument(
        "--worst", type=int, default=10, metavar="K", help="worst classes to list (default 10)"
    )
    p.add_argument(
        "--by", choices=SCORES, default="roc_auc", help="score that ranks the worst classes"
    )
    p.add_argument("--out", metavar="PNG")

    p = sub.add_parser(
        "timeline", help="a soundscape's window predictions as a heat map (classes over time)"
    )
    p.add_argument(
        "--submission", required=True, metavar="CSV", help="rows `<soundscape>_<end second>`"
    )
    p.add_argument("--soundscape", metavar="NAME", help="which soundscape (default: the first)")
    p.add_argument(
        "--top", type=int, default=0, metavar="K", help="only the K classes with the highest peak"
    )
    p.add_argument("--out", metavar="PNG")


def _beside(path: str, suffix: str) -> str:
    """`path` with its extension(s) replaced by `suffix`."""
    for ext in (".csv.gz", ".csv", ".parquet"):
        if path.endswith(ext):
            return path[: -len(ext)] + suffix
    return path + suffix


def _classes(args):
    from birdtpu import plots
    from birdtpu.fs import join

    thresholds = {}
    if args.min:
        thresholds[f"--min {args.min} (upsampled to)"] = args.min
    if args.max:
        thresholds[f"--max {args.max} (downsampled to)"] = args.max
    cfg = config_from_args(args) if args.cfg or args.overrides or not args.table else None
    if cfg is not None:
        if cfg.data.max_per_class:
            thresholds[f"data.max_per_class {cfg.data.max_per_class} (downsampled to)"] = (
                cfg.data.max_per_class
            )
        if cfg.data.cv_min:
            thresholds[f"data.cv_min {cfg.data.cv_min} (train-only below)"] = cfg.data.cv_min
    if args.table:
        from birdtpu.data.catalog import read_table

        df, out, title = (
            read_table(args.table),
            args.out or _beside(args.table, ".classes.png"),
            args.table,
        )
    else:
        from birdtpu.data.prepare import ensure_dataset, load_catalog

        ensure_dataset(cfg, log)
        df, _ = load_catalog(cfg, log)
        out, title = (
            args.out or join(cfg.run_dir, "plots", "classes.png"),
            f"{cfg.name}: catalog as `fit` reads it",
        )
    fig = plots.class_distribution_figure(
        df, thresholds, f"{title}: {len(df)} rows, {df['label'].nunique()} classes"
    )
    return fig, out, f"{df['label'].nunique()} classes, {len(df)} rows"


def _spectrograms(args):
    from birdtpu import plots
    from birdtpu.fs import join

    if args.per_class < 1 or args.max_classes < 1:
        raise ConfigError("--per-class and --max-classes must be at least 1")
    cfg = config_from_args(args)
    sheet = plots.pipeline_spectrograms(
        cfg, args.per_class, args.classes, args.max_classes, log=log
    )
    out = args.out or join(cfg.run_dir, "plots", "spectrograms.png")
    return plots.spectrogram_grid_figure(sheet), out, f"{len(sheet.classes)} classes"


def _history(args):
    import io

    import pandas as pd

    from birdtpu import fs, plots
    from birdtpu.errors import DataError
    from birdtpu.fs import join

    path = join(args.run_dir, "history.csv")
    if not fs.exists(path):
        raise DataError(
            f"{path}: no history (a run folder of `birdtpu fit` has one after its first epoch)"
        )
    df = pd.read_csv(io.StringIO(fs.read_text(path)))
    out = args.out or join(args.run_dir, "plots", "history.png")
    return plots.history_figure(df, path), out, f"{len(df)} epochs"


def _scores(args):
    from birdtpu import plots
    from birdtpu.metrics import read_table

    scores = plots.class_scores(
        read_table(args.truth), read_table(args.pred), (args.truth, args.pred)
    )
    worst = plots.worst_classes(scores, args.worst, args.by).to_string(
        index=False, float_format=lambda v: f"{v:.4f}"
    )
    fig = plots.scores_figure(scores, args.worst, args.by, f"{args.pred} against {args.truth}")
    return (
        fig,
        args.out or _beside(args.pred, ".scores.png"),
        f"{len(scores)} classes; worst by {args.by}:\n{worst}",
    )


def _timeline(args):
    import io

    import pandas as pd

    from birdtpu import fs, plots
    from birdtpu.errors import DataError

    if not fs.exists(args.submission):
        raise DataError(f"{args.submission}: file not found")
    table = pd.read_csv(io.StringIO(fs.read_text(args.submission)))
    name, ends, classes, values = plots.soundscape_windows(table, args.soundscape)
    fig = plots.timeline_figure(name, ends, classes, values, args.top)
    out = args.out or _beside(args.submission, f".{name}.timeline.png")
    return fig, out, f"{name}: {len(ends)} windows"


def figure(args):
    """(Figure, output path, a short summary) of the parsed `birdtpu plot` arguments."""
    return {
        "classes": _classes,
        "spectrograms": _spectrograms,
        "history": _history,
        "scores": _scores,
        "timeline": _timeline,
    }[args.plot_verb](args)


def run(args) -> int:
    from birdtpu.plots import save_png

    fig, out, what = figure(args)
    print(f"{save_png(fig, out)}: {what}")
    return 0
