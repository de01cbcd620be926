"""K-fold training: one `fit` per fold, then the out-of-fold predictions of all folds in one table.

Fold k of run `<name>` trains in `<run dir>/fold<k>/` (its own model.keras, history, metrics and
oof_fold<k>.csv) from the run's one shard set (an embedding_head: the catalog's one embedding
set). The run folder gets `oof.csv` (row_id + one column per class, every clip once; an
embedding_head's rows are windows) with `truth.csv` beside it (0/1, same rows and columns) for
`birdtpu stack --oof oof.csv ... --truth truth.csv`, and `cv.json` (per-fold and pooled scores).
A fold with a metrics.json is done: rerunning the command trains only the folds left.
"""

from __future__ import annotations

import dataclasses
import io

import pandas as pd

from birdtpu import fs
from birdtpu.errors import ConfigError
from birdtpu.fs import join


def parse_folds(text: str, num_folds: int) -> list[int]:
    """`all` or comma-separated fold numbers, each below `num_folds`."""
    if text.strip() == "all":
        return list(range(num_folds))
    try:
        folds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(
            f"--folds {text!r}: expected 'all' or fold numbers such as 0,1,2"
        ) from None
    bad = [k for k in folds if not 0 <= k < num_folds]
    if not folds or bad:
        raise ConfigError(
            f"--folds {text!r}: folds must be 0 ... {num_folds - 1} (data.num_folds {num_folds})"
        )
    return sorted(set(folds))


def fold_config(cfg, fold: int):
    """The config of fold `fold`: its own run folder `<name>/fold<k>`, the run's shard set."""
    return dataclasses.replace(
        cfg,
        name=f"{cfg.name}/fold{fold}",
        data=dataclasses.replace(cfg.data, fold=fold),
        shards=dataclasses.replace(cfg.shards, dir=cfg.shard_dir),
    )


def _read(path: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(fs.read_text(path)))


def fit_folds(cfg, folds: list[int], fit, log=print, overwrite: bool = False) -> dict:
    """Train `folds` with `fit(cfg, log, overwrite)` (`train.fit.fit`, or `teachers.head.fit_head`
    for an embedding_head), finished ones kept unless `overwrite`; write oof.csv, truth.csv and
    cv.json; the pooled scores."""
    import keras

    from birdtpu.metrics import macro_roc_auc

    per_fold = {}
    for k in folds:
        sub = fold_config(cfg, k)
        log(f"cv: fold {k} of {cfg.data.num_folds} -> {sub.run_dir}")
        keras.backend.clear_session()
        per_fold[k] = fit(sub, log, overwrite)
    oof = pd.concat(
        [_read(join(fold_config(cfg, k).run_dir, f"oof_fold{k}.csv")) for k in folds],
        ignore_index=True,
    )
    truth = pd.concat(
        [_read(join(fold_config(cfg, k).run_dir, f"truth_fold{k}.csv")) for k in folds],
        ignore_index=True,
    )
    fs.atomic_write_text(join(cfg.run_dir, "oof.csv"), oof.to_csv(index=False))
    fs.atomic_write_text(join(cfg.run_dir, "truth.csv"), truth.to_csv(index=False))
    classes = [c for c in oof.columns if c != "row_id"]
    scores = {
        "folds": folds,
        "oof_rows": len(oof),
        "macro_roc_auc": macro_roc_auc(truth[classes].to_numpy(), oof[classes].to_numpy()),
        "fold_macro_roc_auc": {str(k): per_fold[k]["macro_roc_auc"] for k in folds},
    }
    fs.write_json(join(cfg.run_dir, "cv.json"), scores)
    log(
        f"cv: {len(folds)} folds, {len(oof)} out-of-fold rows: pooled macro ROC-AUC {scores['macro_roc_auc']:.4f} "
        f"-> {join(cfg.run_dir, 'oof.csv')}, truth.csv, cv.json"
    )
    return scores
