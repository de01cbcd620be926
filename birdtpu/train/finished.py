"""A finished run is not retrained by accident.

`fit` on a run folder that holds `metrics.json` (written last, when training and the out-of-fold
predictions are done) returns its scores with one line, if the run's saved config matches
(inference, tracking and decoding settings aside); with other training settings it is an error
naming them; `--overwrite` retrains from scratch. An unfinished run resumes from its backup.
"""

from __future__ import annotations

import yaml

from birdtpu import fs
from birdtpu.config import to_dict
from birdtpu.errors import DataError
from birdtpu.fs import join

# settings that do not change what training produces
NOT_TRAINING = (
    "infer.",
    "tracking.",
    "pseudo.",  # what `birdtpu pseudo` writes from this run, not how the run trains
    "shards.workers",
    "shards.max_skipped",
    "train.min_val_clips",
)
OUTPUTS = ("metrics.json", "model.keras", "model.json")


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_settings(saved: dict, cfg) -> list[str]:
    """`key: old -> new` for each training setting of `cfg` that differs from `saved`."""
    now = _flat(yaml.safe_load(yaml.safe_dump(to_dict(cfg))))
    before = _flat(saved)
    return [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(now) | set(before))
        if not k.startswith(NOT_TRAINING) and before.get(k) != now.get(k)
    ]


def finished_scores(cfg, overwrite: bool, log=print) -> dict | None:
    """The scores of the finished run in `cfg.run_dir`, or None where it is to be trained
    (not finished, or `overwrite`: its outputs and backup are removed first)."""
    run_dir = cfg.run_dir
    metrics = join(run_dir, "metrics.json")
    if not fs.exists(metrics):
        return None
    if overwrite:
        log(f"fit: --overwrite: retraining {run_dir} from scratch")
        for name in OUTPUTS:
            fs.discard(join(run_dir, name))
        if fs.exists(join(run_dir, "backup")):
            fs.rmtree(join(run_dir, "backup"))
        return None
    saved = join(run_dir, "config.yaml")
    changed = changed_settings(yaml.safe_load(fs.read_text(saved)), cfg) if fs.exists(saved) else []
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise DataError(
            f"{run_dir}: a finished run with other settings ({'; '.join(changed[:3])}{more}): "
            "use another name, or --overwrite to retrain it"
        )
    scores = fs.read_json(metrics)
    log(
        f"fit: {run_dir} is already trained (validation macro ROC-AUC "
        f"{scores['macro_roc_auc']:.4f}); nothing to do, --overwrite retrains"
    )
    return scores
