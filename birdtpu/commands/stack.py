"""`birdtpu stack`: train the per-class stacking ensemble on out-of-fold predictions.

Scores each input model, the mean, the rank mean, the per-class weighted mean and the stacker
out of fold on the same multilabel-stratified folds, then trains the stacker on all rows for the
median of its early-stopped epoch counts. Writes to --out: stacker.keras (for
`birdtpu.ensemble.load_stacker` / `apply_stacker`), report.json and oof_stacker.csv.
"""

from __future__ import annotations

import os

from birdtpu.commands import log
from birdtpu.commands.evaluate import metric_names
from birdtpu.errors import ConfigError
from birdtpu.progress import Progress


def add_arguments(parser) -> None:
    parser.add_argument(
        "--oof",
        nargs="+",
        required=True,
        metavar="CSV",
        help="out-of-fold predictions of two or more models (row_id + classes); this order "
        "is the order `apply_stacker` expects",
    )
    parser.add_argument(
        "--truth", required=True, metavar="CSV", help="truth of the same rows, 0 or 1"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (local or gs://)"
    )
    parser.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="repeatable; default: macro_roc_auc and lwlrap",
    )
    parser.add_argument("--folds", type=int, default=10, help="outer folds (default 10)")
    parser.add_argument(
        "--offset", type=float, default=1.6, help="output offset: (tanh(scale*(x-offset))+1)/2"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="output gain, see --offset")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="Nadam learning rate")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument(
        "--patience", type=int, default=15, help="early-stopping patience in epochs"
    )
    parser.add_argument("--seed", type=int, default=0)


def _names(paths: list[str]) -> list[str]:
    """Model names: file names without .csv (with the parent folder where names collide)."""
    names = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    if len(set(names)) < len(names):
        names = [os.path.splitext(p)[0].replace(os.sep, "/") for p in paths]
    return names


def _table(report: dict) -> str:
    """The report as a text table: one row per method, one column per metric."""
    metrics = list(next(iter(report.values())))
    width = max(len(m) for m in report)
    lines = [f"{'':{width}}  " + "  ".join(f"{m:>13}" for m in metrics)]
    for method, scores in report.items():
        lines.append(f"{method:{width}}  " + "  ".join(f"{scores[m]:13.6f}" for m in metrics))
    return "\n".join(lines)


def run(args) -> int:
    metrics = metric_names(args.metric or ["macro_roc_auc", "lwlrap"])
    if len(args.oof) < 2:
        raise ConfigError("--oof needs the predictions of at least two models")
    import dataclasses

    import pandas as pd

    from birdtpu import ensemble, fs
    from birdtpu.metrics import read_table

    names = _names(args.oof)
    truth = read_table(args.truth)
    y, x, classes, row_ids = ensemble.oof_inputs(
        truth, [read_table(p) for p in args.oof], args.oof, args.truth
    )
    options = ensemble.StackerOptions(
        folds=args.folds,
        offset=args.offset,
        scale=args.scale,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        patience=args.patience,
        seed=args.seed,
    )
    log(f"stack: {len(y)} rows, {len(classes)} classes, {len(names)} models, {options.folds} folds")
    with Progress(options.folds, log, name="stack", unit="folds") as progress:

        def fold_done(line: str) -> None:  # cross_validate logs one line per finished fold
            progress.message(line)
            progress.advance()

        report, oof, epochs = ensemble.cross_validate(
            y, x, classes, names, metrics, options, fold_done
        )
    model, _ = ensemble.fit_stacker(y, x, classes, names, options, epochs=epochs)
    fs.makedirs(args.out)
    ensemble.save_stacker(model, os.path.join(args.out, "stacker.keras"))
    stacked = pd.DataFrame(oof["stacker"], columns=classes)
    stacked.insert(0, "row_id", row_ids)
    fs.atomic_write_text(os.path.join(args.out, "oof_stacker.csv"), stacked.to_csv(index=False))
    fs.write_json(
        os.path.join(args.out, "report.json"),
        {
            "models": dict(zip(names, args.oof)),
            "truth": args.truth,
            "rows": len(y),
            "classes": len(classes),
            "options": dataclasses.asdict(options),
            "final_epochs": epochs,
            "out_of_fold": report,
        },
    )
    print(_table(report))
    print(f"{args.out}: stacker.keras ({epochs} epochs on all rows), report.json, oof_stacker.csv")
    return 0
