"""`birdtpu fit --rounds N`: noisy-student rounds in one command.

Round 0 is the recipe's own fit (the teacher) in `<run>/round-0/`. Round k (1..N) pseudo-labels
the soundscapes of `pseudo.soundscapes` (else `data.soundscape_dir`) with round k-1's model
(`birdtpu.infer.pseudo.write_pseudo`, transform `pseudo.power`/`floor`/`top_k`) into
`<pseudo.output_dir or run/pseudo>/round-<k>/`, then fits a student from scratch in
`<run>/round-<k>/` with those windows mixed in (`train.pseudo_shards` = that folder,
`train.pseudo_ratio` = `pseudo.ratio`, and `augment.pseudo_mixup_prob` pairs labelled clips with
them from round 1 on; the teacher is round k-1 alone: `pseudo.runs` and
`infer.model` are not used). Each round's folder is a whole run (model.keras,
history.csv, oof/truth, metrics.json) plus `soundscape_scores.json` (window macro AUC on the
labelled soundscapes of `train.soundscape_val`, else of `<data.root>/train_soundscapes_labels.csv`
where it exists) and `round.json` (its row of the table).

The run folder gets `rounds.csv` (round, val_macro_auc: the clip-level validation score,
soundscape_macro_auc, pseudo_windows, seconds) and the last round's model.keras and model.json,
so `birdtpu predict --cfg X` predicts with the final student. Resumable: a round whose
round.json and metrics.json are there (with the same training settings) is not redone; an
interrupted round resumes from its backup, and its pseudo-labels from the shards already
written. Changed `pseudo.power`/`floor`/`top_k` do not redo finished rounds (they are no
training settings of the round's run): use `--overwrite` or another run name.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from birdtpu import fs, saving
from birdtpu.errors import ConfigError
from birdtpu.fs import join
from birdtpu.infer.pseudo import round_dir, write_pseudo
from birdtpu.train import soundscape_val
from birdtpu.train.finished import finished_scores
from birdtpu.train.fit import fit

COLUMNS = ["round", "val_macro_auc", "soundscape_macro_auc", "pseudo_windows", "seconds"]
ROUND_FILE, SCORES_FILE, TABLE = "round.json", "soundscape_scores.json", "rounds.csv"
FINAL = ("model.keras", "model.json")


def round_config(cfg, k: int):
    """The config of round `k`: its run folder `<run>/round-<k>`; from round 1 on, trained with
    round k's pseudo-labels at `pseudo.ratio`."""
    out = dataclasses.replace(cfg, name=f"{cfg.name}/round-{k}")
    if k == 0:  # the teacher: no pseudo-labels to mix with yet
        return dataclasses.replace(
            out, augment=dataclasses.replace(cfg.augment, pseudo_mixup_prob=0.0)
        )
    train = dataclasses.replace(
        cfg.train, pseudo_shards=[round_dir(cfg, k)], pseudo_ratio=cfg.pseudo.ratio
    )
    return dataclasses.replace(out, train=train)


def teacher_config(cfg, k: int):
    """Round k-1's config set up to pseudo-label for round k with its own model."""
    teacher = round_config(cfg, k - 1)
    pseudo = dataclasses.replace(
        cfg.pseudo,
        runs=[],
        round=k,
        output_dir=cfg.pseudo.output_dir or join(cfg.run_dir, "pseudo"),
    )
    return dataclasses.replace(
        teacher, pseudo=pseudo, infer=dataclasses.replace(cfg.infer, model="")
    )


def labelled_soundscapes(cfg) -> str:
    """The labels CSV the rounds are scored on ('' where the recipe has none)."""
    path = soundscape_val.labels_path(cfg)
    if path:
        return path
    default = join(cfg.data.root, "train_soundscapes_labels.csv")
    return default if fs.exists(default) else ""


def _soundscape_auc(rcfg, labels: str, classes, scapes_cache: dict, log) -> float:
    """Window macro AUC of round `rcfg`'s best model on `labels` (NaN without labels); writes
    soundscape_scores.json in the round's folder."""
    if not labels:
        return float("nan")
    if "scapes" not in scapes_cache:
        scapes_cache["scapes"] = soundscape_val.from_labels(rcfg, classes, labels)
    model = saving.load_model(join(rcfg.run_dir, "model.keras"))
    result = soundscape_val.score(model, scapes_cache["scapes"], rcfg.train.batch_size)
    fs.write_json(join(rcfg.run_dir, SCORES_FILE), {**result, "labels": labels})
    log(
        f"rounds: {rcfg.run_dir}: soundscape window macro ROC-AUC {result['window_macro_auc']:.4f} "
        f"over {result['classes_scored']} classes, {result['windows']} windows"
    )
    return result["window_macro_auc"]


def _done(rcfg, overwrite: bool, log) -> dict | None:
    """The row of a finished round, or None where it is to be (re)done."""
    path = join(rcfg.run_dir, ROUND_FILE)
    if overwrite or not fs.exists(path):
        return None
    if finished_scores(rcfg, False, log) is None:
        return None
    log(f"rounds: round {fs.read_json(path)['round']} is finished; not redone")
    return fs.read_json(path)


def fit_rounds(cfg, rounds: int, log=print, overwrite: bool = False) -> pd.DataFrame:
    """Rounds 0..`rounds` of `cfg` (see the module docstring); returns the table of rounds."""
    if rounds < 1:
        raise ConfigError(f"--rounds: expected 1 or more student rounds, got {rounds}")
    paired = cfg.augment.pseudo_mixup_prob > 0
    if not (0 < cfg.pseudo.ratio < 1 or (paired and cfg.pseudo.ratio == 0)):
        raise ConfigError(
            f"pseudo.ratio: must be between 0 and 1 for --rounds (0 with "
            f"augment.pseudo_mixup_prob), got {cfg.pseudo.ratio}"
        )
    labels, cache, rows = labelled_soundscapes(cfg), {}, []
    for k in range(rounds + 1):
        rcfg = round_config(cfg, k)
        row = _done(rcfg, overwrite, log)
        if row is None:
            started = time.time()
            windows = 0
            if k:
                log(f"rounds: round {k}: pseudo-labelling with round {k - 1}'s model")
                windows = write_pseudo(teacher_config(cfg, k), log, k)["examples"]
            log(f"rounds: round {k}: fitting {rcfg.run_dir}")
            scores = fit(rcfg, log, overwrite)
            classes = fs.read_json(join(rcfg.run_dir, "model.json"))["classes"]
            row = {
                "round": k,
                "val_macro_auc": scores["macro_roc_auc"],
                "soundscape_macro_auc": _soundscape_auc(rcfg, labels, classes, cache, log),
                "pseudo_windows": windows,
                "seconds": round(time.time() - started, 1),
            }
            fs.write_json(join(rcfg.run_dir, ROUND_FILE), row)
        rows.append(row)
    table = pd.DataFrame(rows, columns=COLUMNS)
    fs.atomic_write_text(join(cfg.run_dir, TABLE), table.to_csv(index=False))
    last = round_config(cfg, rounds).run_dir
    for name in FINAL:
        fs.atomic_write_bytes(join(cfg.run_dir, name), fs.read_bytes(join(last, name)))
    log(f"rounds: {len(rows)} rounds -> {join(cfg.run_dir, TABLE)}")
    return table


def format_table(table: pd.DataFrame) -> str:
    """The rounds as aligned text (NaN: no labelled soundscapes)."""
    lines = ["round  val_macro_auc  soundscape_macro_auc  pseudo_windows  seconds"]
    for r in table.itertuples(index=False):
        scape = "-" if np.isnan(r.soundscape_macro_auc) else f"{r.soundscape_macro_auc:.4f}"
        lines.append(
            f"{r.round:>5}  {r.val_macro_auc:>13.4f}  {scape:>20}  {r.pseudo_windows:>14}  "
            f"{r.seconds:>7.1f}"
        )
    return "\n".join(lines)
