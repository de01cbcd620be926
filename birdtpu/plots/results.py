"""A run's results: the training history, and per-class scores with the worst classes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from birdtpu.errors import DataError
from birdtpu.metrics import (
    align_tables,
    lwlrap_per_class,
    per_class_average_precision,
    per_class_roc_auc,
)
from birdtpu.plots.figures import class_ticks, new_figure

SCORE_COLUMNS = ("roc_auc", "average_precision", "lwlrap")


# ------------------------------------------------------------------ history


def history_figure(history, title: str = "") -> Figure:
    """Training history (a history.csv table or its rows): a panel per metric (`loss` first; train
    dashed, `val_` solid) and the learning rate (panel `lr`), by epoch (1-based)."""
    df = pd.DataFrame(history)
    if df.empty or "epoch" not in df.columns:
        raise DataError("history: no rows with an `epoch` column")
    epochs = df["epoch"].to_numpy() + 1
    names = [c for c in df.columns if c not in ("epoch", "lr") and not c.startswith("val_")]
    names += [c[4:] for c in df.columns if c.startswith("val_") and c[4:] not in names]
    names.sort(key=lambda n: (n != "loss", n))
    panels = names + (["lr"] if "lr" in df.columns else [])
    fig = new_figure(4.0 * len(panels), 3.4)
    for ax, name in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.set_gid(name)
        if name == "lr":
            ax.plot(epochs, df["lr"].to_numpy(), "-o", ms=3, label="lr")
            ax.set_yscale(
                "log" if (df["lr"] > 0).all() and df["lr"].max() > 20 * df["lr"].min() else "linear"
            )
            ax.set_title("learning rate (epoch end)")
        else:
            for column, style in ((name, "--o"), (f"val_{name}", "-o")):
                if column in df.columns:
                    ax.plot(epochs, df[column].to_numpy(), style, ms=3, label=column)
            ax.set_title(name)
            ax.legend(fontsize=8)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ per-class scores


def class_scores(
    truth: pd.DataFrame, pred: pd.DataFrame, names: tuple[str, str] = ("truth", "pred")
) -> pd.DataFrame:
    """Per class (truth's order): positives, roc_auc, average_precision, lwlrap and its weight
    (birdtpu.metrics; NaN where a class lacks positives, or negatives for ROC-AUC)."""
    y, s, classes = align_tables(truth, pred, names)
    per, weight = lwlrap_per_class(y, s)
    per = np.where(weight > 0, per, np.nan)  # a class without positives has no lwlrap (it weighs 0)
    return pd.DataFrame(
        {
            "class": classes,
            "positives": y.sum(axis=0).astype(int),
            "roc_auc": per_class_roc_auc(y, s),
            "average_precision": per_class_average_precision(y, s),
            "lwlrap": per,
            "lwlrap_weight": weight,
        }
    )


def worst_classes(scores: pd.DataFrame, k: int = 10, by: str = "roc_auc") -> pd.DataFrame:
    """The `k` classes with the lowest `by` (classes where it is undefined left out)."""
    return scores.dropna(subset=[by]).sort_values([by, "class"], kind="stable").head(k)


def scores_figure(
    scores: pd.DataFrame, worst: int = 10, by: str = "roc_auc", title: str = ""
) -> Figure:
    """Panels `roc_auc`, `average_precision`, `lwlrap`: one bar per class where defined, lowest
    first, with the macro mean (lwlrap: the weighted sum) as a line; panel `worst`: the `worst`
    lowest classes by `by` with their other scores and positives."""
    fig = new_figure(max(9.0, 0.16 * len(scores) + 2.0), 12.0)
    grid = fig.subplots(4, 1, gridspec_kw={"height_ratios": [2, 2, 2, 2.4]})
    for ax, metric in zip(grid, SCORE_COLUMNS):
        ax.set_gid(metric)
        shown = scores.dropna(subset=[metric]).sort_values([metric, "class"], kind="stable")
        ax.bar(np.arange(len(shown)), shown[metric].to_numpy(), width=0.85, color="tab:blue")
        if metric == "lwlrap":
            overall = float((scores["lwlrap"].fillna(0) * scores["lwlrap_weight"]).sum())
        else:
            overall = float(shown[metric].mean()) if len(shown) else math.nan
        ax.axhline(
            overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.4f}"
        )
        class_ticks(ax, shown["class"])
        ax.set_xlim(-0.6, max(len(shown), 1) - 0.4)
        ax.set_ylim(0, 1.02)
        left = len(scores) - len(shown)
        ax.set_title(
            f"{metric} per class, lowest first"
            + (f" ({left} undefined, not shown)" if left else "")
        )
        ax.legend(fontsize=8, loc="lower right")
    ax = grid[-1]
    ax.set_gid("worst")
    rows = worst_classes(scores, worst, by)
    bars = ax.barh(np.arange(len(rows)), rows[by].to_numpy(), color="tab:red")
    ax.bar_label(
        bars,
        [
            f" {r[by]:.3f}  ("
            + ", ".join(f"{m} {r[m]:.3f}" for m in SCORE_COLUMNS if m != by)
            + f", {r['positives']} positives)"
            for _, r in rows.iterrows()
        ],
        fontsize=8,
    )
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels(rows["class"].tolist())
    ax.invert_yaxis()
    ax.set_xlim(0, 1.6)
    ax.set_title(f"the {len(rows)} worst classes by {by}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
