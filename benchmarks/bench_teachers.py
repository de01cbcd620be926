"""From scratch or on a pretrained teacher's embeddings: macro ROC-AUC and top-1 on real clips.

    .venv/bin/python benchmarks/bench_teachers.py [--root DIR] [--epochs 10] [--head-epochs 60]
        [--out DIR] [--cases scratch,fat2019,head,distilled]

DIR is a BirdCLEF layout of real recordings (train_metadata.csv, `filename` relative to DIR),
e.g. the 20 great tit and 2 Bengalese finch clips of the pykanto 0.1.8 wheel (MIT). Recordings
are split into 2 folds by recording group: great tit clips by nest box (the `B32` / `SW83` part
of the name), others by recording; each case trains on one fold and validates on the other,
both ways, and the table gives each fold's and the mean scores:
- scratch: configs/birdclef24.yaml, EfficientNetB0 with no pretrained weights;
- fat2019: configs/fat2019.yaml, the Freesound 2019 CNN;
- head:    an embedding_head (linear, the birdclef24 loss, peak lr 3e-3) on BirdNET V2.4 embeddings
           (`birdtpu embed`, the [birdnet] extra), scored per recording (the max over its 3-s
           windows) and per window;
- distilled: the scratch case plus the cosine loss towards the head case's BirdNET embeddings
           (`train.teacher_embeddings`, weight 1; runs after `head`, whose embedding set it reads).
Each fit runs in its own process through the CLI; the CNNs train `--epochs` epochs on CPU with
class upsampling off, the head `--head-epochs`. With the `--out` of an earlier run, finished
fits are read back, not run again. Not a test: it needs the data and minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {
    "scratch": ("configs/birdclef24.yaml", ["model.pretrained=none"]),
    "fat2019": ("configs/fat2019.yaml", []),
    "head": (
        "configs/birdclef24.yaml",
        # the recipe's peak lr (1.4e-6 per sample of the batch) is a fine-tuning rate: a linear
        # head from zero needs a larger one
        [
            "model.name=embedding_head",
            "embed.teacher=birdnet",
            "train.lr_scale=none",
            "train.lr=3e-3",
        ],
    ),
    "distilled": (
        "configs/birdclef24.yaml",
        [
            "model.pretrained=none",
            "train.teacher_embeddings=[{out}/runs/embeddings/birdnet-catalog]",
        ],
    ),
}
BOX = re.compile(r"-(B\d+|SW\d+)-")


def fold_table(root: str, out: str) -> str:
    """The catalog of `root` with 2 folds by recording group, as a table for data.table."""
    sys.path.insert(0, ROOT)
    from birdtpu.data.catalog import read_birdclef, write_table

    df = read_birdclef(root, "train_metadata.csv", "")
    groups = [
        (m.group(1) if (m := BOX.search(os.path.basename(f))) else os.path.basename(f))
        for f in df["filename"]
    ]
    df["group"] = groups
    folds = {}
    for label, part in df.groupby("label"):
        for i, g in enumerate(sorted(part["group"].unique())):
            folds[(label, g)] = i % 2
    df["fold"] = [folds[(lab, g)] for lab, g in zip(df["label"], df["group"])]
    path = os.path.join(out, "table.csv")
    write_table(df, path)
    return path


def fit(case: str, fold: int, table: str, out: str, epochs: int, head_epochs: int) -> dict:
    cfg, extra = CASES[case]
    sets = [
        f"data.table={table}",
        "data.num_folds=2",
        f"data.fold={fold}",
        "data.cv_min=0",
        "data.min_per_class=0",
        "data.max_per_class=0",
        f"output_dir={out}/runs",
        f"name={case}-fold{fold}",
        "shards.workers=1",
        "train.batch_size=8",
        f"train.epochs={head_epochs if case == 'head' else epochs}",
        "train.warmup_epochs=1",
        "train.early_stopping=0",
        "train.steps_per_execution=1",  # the TPU setting (32) runs 32 steps of a 2-step epoch
        "tracking.wandb=disabled",
        *(x.format(out=out) for x in extra),
    ]
    args = [sys.executable, "-m", "birdtpu.cli", "fit", "--cfg", os.path.join(ROOT, cfg)]
    args += [x for s in sets for x in ("--set", s)]
    metrics = os.path.join(out, "runs", f"{case}-fold{fold}", "metrics.json")
    if not os.path.exists(metrics):  # else finished in an earlier run of this benchmark
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
        if done.returncode:
            return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.load(open(metrics))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root",
        default=os.path.join(os.path.dirname(__file__), "data", "real_clips"),
        help="BirdCLEF layout of real recordings (default: the bundled 22 pykanto clips)",
    )
    parser.add_argument("--epochs", type=int, default=10, help="CNN epochs")
    parser.add_argument("--head-epochs", type=int, default=60)
    parser.add_argument("--out", help="work folder (default: a temporary one)")
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="bench-teachers-"))
    os.makedirs(out, exist_ok=True)
    table = fold_table(os.path.abspath(args.root), out)
    rows = []
    for case in args.cases.split(","):
        per_fold = [fit(case, k, table, out, args.epochs, args.head_epochs) for k in (0, 1)]
        rows.append((case, per_fold))
        print(f"{case}: {json.dumps(per_fold, default=str)[:400]}", file=sys.stderr, flush=True)
    print(f"\n{out}\n")
    print(
        "| case | level | fold 0 AUC | fold 1 AUC | mean macro AUC | mean top-1 | "
        "mean macro recall | val items | train min |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for case, per_fold in rows:
        if any("error" in s for s in per_fold):
            print(f"| {case} | error: {next(s['error'] for s in per_fold if 'error' in s)} |")
            continue
        levels = [("recording", "recording_"), ("window", "")] if case == "head" else [("clip", "")]
        for level, p in levels:
            auc = [s[f"{p}macro_roc_auc"] for s in per_fold]
            top1 = [s[f"{p}top1_accuracy"] for s in per_fold]
            recall = f"{sum(s['macro_recall'] for s in per_fold) / 2:.3f}" if not p else "-"
            n = sum(s[f"{p}val_clips"] for s in per_fold)
            minutes = sum(s["train_minutes"] for s in per_fold)
            print(
                f"| {case} | {level} | {auc[0]:.3f} | {auc[1]:.3f} | {sum(auc) / 2:.3f} | "
                f"{sum(top1) / 2:.3f} | {recall} | {n} | {minutes:.2f} |"
            )


if __name__ == "__main__":
    main()
