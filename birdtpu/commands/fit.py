"""`birdtpu fit`: train a recipe (building its shards first where missing): one fold or K folds."""

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--fold", type=int, help="validation fold of a single run (overrides data.fold)"
    )
    which.add_argument(
        "--folds",
        metavar="all|K,K,...",
        help="train these folds, each in <run>/fold<k>/, then write the pooled oof.csv and truth.csv",
    )
    which.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="noisy student: round 0 (the teacher), then N pseudo-label + student rounds, each in "
        "<run>/round-<k>/; rounds.csv and the last round's model in the run folder",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="retrain a finished run from scratch (without it, a finished run is left as it is)",
    )


def run(args) -> int:
    if args.fold is not None:
        args.overrides.append(f"data.fold={args.fold}")
    cfg = config_from_args(args)
    if args.rounds is not None:
        from birdtpu.train.rounds import fit_rounds, format_table

        table = fit_rounds(cfg, args.rounds, log, args.overwrite)
        print(f"{cfg.run_dir}: rounds.csv, round-<k>/, model.keras of round {args.rounds}")
        print(format_table(table))
        return 0
    if cfg.model.name == "embedding_head":  # a head on a teacher's embeddings (docs/teachers.md)
        from birdtpu.teachers.head import fit_head as fit
    else:
        from birdtpu.train.fit import fit
    if args.folds is not None:
        from birdtpu.train.cv import fit_folds, parse_folds

        folds = parse_folds(args.folds, cfg.data.num_folds)
        scores = fit_folds(cfg, folds, fit, log, args.overwrite)
        print(
            f"{cfg.run_dir}: oof.csv, truth.csv, cv.json and fold<k>/; "
            f"pooled out-of-fold macro ROC-AUC {scores['macro_roc_auc']:.4f}"
        )
        return 0
    scores = fit(cfg, log, args.overwrite)
    print(
        f"{cfg.run_dir}: model.keras, history.csv, oof_fold{cfg.data.fold}.csv, metrics.json; "
        f"validation macro ROC-AUC {scores['macro_roc_auc']:.4f}"
    )
    return 0
