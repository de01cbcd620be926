"""`birdtpu fit`: train a recipe (building its shards first where missing)."""

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--fold", type=int, help="validation fold (overrides data.fold)")


def run(args) -> int:
    if args.fold is not None:
        args.overrides.append(f"data.fold={args.fold}")
    cfg = config_from_args(args)
    from birdtpu.train.fit import fit

    scores = fit(cfg, log)
    print(f"{cfg.run_dir}: model.keras, history.csv, oof_fold{cfg.data.fold}.csv, metrics.json; "
          f"validation macro ROC-AUC {scores['macro_roc_auc']:.4f}")
    return 0
