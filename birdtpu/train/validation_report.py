"""What `fit` says about its validation fold beside the AUC: per-class recall of the top class,
and warnings where the fold is too small to judge a class or the predictions do not vary (an AUC
of 1.0 on one clip, or exactly 0.5 from a constant output, reads well and means little)."""

from __future__ import annotations

import numpy as np

from birdtpu.metrics import top_k_accuracy

CONSTANT_STD = 1e-6  # predictions whose largest per-class std is below this are constant
SHOWN = 5  # classes named in a warning or the closing line


def per_class_recall(y_true, y_score) -> np.ndarray:
    """For each class, the share of its validation clips (rows where it is a true label) whose
    highest score is that class (ties at the top count as hits, as top_k_accuracy); NaN for a
    class without clips."""
    y, s = np.asarray(y_true) > 0, np.asarray(y_score, dtype=np.float64)
    top = s >= s.max(axis=1, keepdims=True)
    hits, clips = (top & y).sum(axis=0), y.sum(axis=0)
    return np.where(clips > 0, hits / np.maximum(clips, 1), np.nan)


def _named(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (
        f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    )


def fold_warnings(y_true, y_score, classes: list[str], min_clips: int) -> list[str]:
    """One line (without the `fit: warning: ` prefix) per problem of the validation fold."""
    y, s = np.asarray(y_true) > 0, np.asarray(y_score, dtype=np.float64)
    lines = []
    clips = y.sum(axis=0)
    few = [c for c, n in zip(classes, clips) if n < min_clips]
    if few:
        lines.append(
            f"{len(few)} of {len(classes)} classes have fewer than {min_clips} validation clips "
            f"({_named(few)}): their AUC and recall say little (train.min_val_clips; more data "
            "or fewer folds)"
        )
    if len(s) > 1 and float(s.std(axis=0).max()) < CONSTANT_STD:
        lines.append(
            f"the predictions are the same for all {len(s)} validation clips: the model's output "
            "is constant and its AUC (0.5) means nothing"
        )
    return lines


def report(y_true, y_score, classes: list[str]) -> dict:
    """top1_accuracy, macro_recall (over classes with validation clips) and per_class_recall
    (class: recall, None for a class without clips), for metrics.json."""
    recall = per_class_recall(y_true, y_score)
    known = recall[~np.isnan(recall)]
    return {
        "top1_accuracy": top_k_accuracy(y_true, y_score, 1),
        "macro_recall": float(known.mean()) if len(known) else None,
        "per_class_recall": {
            c: None if np.isnan(r) else round(float(r), 4) for c, r in zip(classes, recall)
        },
    }


def recall_text(scores: dict) -> str:
    """`macro recall 0.500 (worst: b 0.00, a 1.00)` for the closing line."""
    if scores["macro_recall"] is None:
        return "macro recall n/a"
    known = sorted((r, c) for c, r in scores["per_class_recall"].items() if r is not None)
    worst = ", ".join(f"{c} {r:.2f}" for r, c in known[:SHOWN])
    return f"macro recall {scores['macro_recall']:.3f} (worst: {worst})"
