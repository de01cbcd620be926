"""Catalog build on 250,000 synthetic BirdCLEF rows: birdtpu's vectorised code beside per-row loops.

    .venv/bin/python benchmarks/bench_catalog.py [--rows 250000] [--classes 1000]

Writes a synthetic `train_metadata.csv` (BirdCLEF 2023 columns, long-tailed classes, 30% of rows
with secondary labels) to a temporary folder, then runs every case in a fresh process: the
seconds of one run, then the peak memory of a second run under tracemalloc (Python and numpy
allocations of that stage). Stages after reading start from a pickled table. The baselines are
the per-row loops birdtpu started from (kept here, not in the package).
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import pandas as pd

from birdtpu.data import catalog, folds, sampling

# ------------------------------------------------------------------ baselines: per-row loops


def read_loop(root: str) -> pd.DataFrame:
    """The per-row reader: one Python dict per row, ast.literal_eval and os.path per row."""
    path = os.path.join(root, "train_metadata.csv")
    df = pd.read_csv(path)
    audio_root = os.path.join(root, "train_audio")
    rows = []
    for r in df.itertuples(index=False):
        norm = os.path.normpath(str(r.filename))
        if os.path.isabs(norm) or norm.startswith(".."):
            raise ValueError(norm)
        secondary = (
            ast.literal_eval(r.secondary_labels) if isinstance(r.secondary_labels, str) else []
        )
        primary = str(r.primary_label)
        token = os.path.basename(norm).split(".")[0]
        rows.append(
            {
                "filepath": os.path.join(audio_root, norm),
                "filename": norm,
                "label": primary,
                "labels": [primary] + [s for s in secondary if s != primary],
                "source": "birdclef",
                "xc_id": token if token.startswith("XC") else None,
                "author": r.author,
                "rating": float(r.rating),
                "duration": np.nan,
            }
        )
    out = pd.DataFrame(rows)
    if out["filepath"].duplicated().any():
        raise ValueError("duplicate")
    return out


def targets_loop(df: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """Multi-hot targets, one row and one label at a time."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(df), len(classes)), np.float32)
    for row, labels in enumerate(df["labels"]):
        for j, label in enumerate(labels):
            out[row, index[label]] = max(out[row, index[label]], 1.0 if j == 0 else 0.5)
    return out


def folds_plain(df: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    """StratifiedKFold on the primary label, rare classes at random folds (no grouping, no guarantee)."""
    from sklearn.model_selection import StratifiedKFold

    out = np.full(len(df), -1)
    labels = df["label"].to_numpy()
    counts = pd.Series(labels).value_counts()
    rare = np.isin(labels, counts[counts < n_folds].index)
    common = np.flatnonzero(~rare)
    for k, (_, val) in enumerate(
        StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(common, labels[common])
    ):
        out[common[val]] = k
    out[rare] = np.random.default_rng(seed).integers(n_folds, size=rare.sum())
    return out


def build_loop(root: str) -> None:
    df = read_loop(root)
    df = df.drop_duplicates("xc_id").reset_index(drop=True)
    df["fold"] = folds_plain(df, 25, 0)
    targets_loop(df, sorted({x for labels in df["labels"] for x in labels}))


def build_birdtpu(root: str) -> None:
    df = catalog.read_birdclef(root)
    df, _ = catalog.deduplicate(df)
    df = sampling.filter_rare(df, 5)
    df["fold"] = folds.make_folds(df, 25, 0)
    catalog.targets(df, catalog.label_map(df), 0.5)


# ------------------------------------------------------------------ cases

CASES = [  # (stage, variant, function name, input: "csv" or "table")
    ("read train_metadata.csv", "per-row loop", "read_loop", "csv"),
    ("read train_metadata.csv", "birdtpu vectorised", "read_birdtpu", "csv"),
    ("targets (multi-hot)", "per-row loop", "targets_loop", "table"),
    ("targets (multi-hot)", "birdtpu vectorised", "targets_birdtpu", "table"),
    ("25 folds", "StratifiedKFold, rare at random", "folds_plain", "table"),
    ("25 folds", "birdtpu: grouped + class guarantee", "folds_birdtpu", "table"),
    ("full build", "per-row loops", "build_loop", "csv"),
    ("full build", "birdtpu", "build_birdtpu", "csv"),
]


def _stage(name: str, root: str, table: pd.DataFrame | None):
    """A zero-argument callable running case `name`."""
    classes = catalog.label_map(table) if table is not None else None
    return {
        "read_loop": lambda: read_loop(root),
        "read_birdtpu": lambda: catalog.read_birdclef(root),
        "targets_loop": lambda: targets_loop(table, classes),
        "targets_birdtpu": lambda: catalog.targets(table, classes, 0.5),
        "folds_plain": lambda: folds_plain(table, 25, 0),
        "folds_birdtpu": lambda: folds.make_folds(table, 25, 0),
        "build_loop": lambda: build_loop(root),
        "build_birdtpu": lambda: build_birdtpu(root),
    }[name]


def child(name: str, root: str, table_path: str | None) -> None:
    """Run one case twice (timed, then under tracemalloc) and print {seconds, peak_mb} as JSON."""
    table = None
    if table_path:
        with open(table_path, "rb") as fh:
            table = pickle.load(fh)
    run = _stage(name, root, table)
    import sklearn.model_selection  # noqa: F401  (a one-off import is not part of any stage)

    gc.collect()
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    del result
    gc.collect()
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"seconds": seconds, "peak_mb": peak / 2**20}))


def synthetic_metadata(root: str, rows: int, classes: int, seed: int = 0) -> None:
    """A BirdCLEF 2023-style train_metadata.csv with long-tailed classes and secondary labels."""
    rng = np.random.default_rng(seed)
    names = np.array([f"sp{i:04d}" for i in range(classes)])
    weights = 1.0 / np.arange(1, classes + 1) ** 0.8
    primary = names[rng.choice(classes, rows, p=weights / weights.sum())]
    n_secondary = np.where(rng.random(rows) < 0.3, rng.integers(1, 4, rows), 0)
    secondary = [str(list(names[rng.integers(0, classes, k)])) if k else "[]" for k in n_secondary]
    xc = rng.permutation(np.arange(100000, 100000 + rows))
    pd.DataFrame(
        {
            "primary_label": primary,
            "secondary_labels": secondary,
            "type": "['song']",
            "latitude": rng.uniform(-60, 70, rows).round(4),
            "longitude": rng.uniform(-180, 180, rows).round(4),
            "scientific_name": "Genus species",
            "common_name": "Some Bird",
            "author": np.array([f"Recordist {i}" for i in range(20000)])[
                rng.integers(0, 20000, rows)
            ],
            "license": "Creative Commons Attribution-NonCommercial-ShareAlike 4.0",
            "rating": rng.integers(0, 11, rows) / 2,
            "url": [f"https://www.xeno-canto.org/{i}" for i in xc],
            "filename": [f"{p}/XC{i}.ogg" for p, i in zip(primary, xc)],
        }
    ).to_csv(os.path.join(root, "train_metadata.csv"), index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument(
        "--child", nargs=3, metavar=("CASE", "ROOT", "TABLE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        name, root, table = args.child
        child(name, root, table if table != "-" else None)
        return
    with tempfile.TemporaryDirectory() as root:
        synthetic_metadata(root, args.rows, args.classes)
        table_path = os.path.join(root, "table.pkl")
        with open(table_path, "wb") as fh:
            pickle.dump(catalog.read_birdclef(root), fh)
        results = []
        for stage, variant, name, source in CASES:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    name,
                    root,
                    table_path if source == "table" else "-",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append((stage, variant, json.loads(out.stdout.strip().splitlines()[-1])))
    print(
        f"bench_catalog: {args.rows:,} synthetic BirdCLEF rows, {args.classes:,} classes, "
        f"{os.cpu_count()} CPU(s); one process per case; peak = tracemalloc peak of the stage"
    )
    print(f"{'stage':<26}{'variant':<38}{'seconds':>9}{'speed-up':>10}{'peak MB':>10}{'memory':>9}")
    baseline = {}
    for stage, variant, r in results:
        base = baseline.setdefault(stage, r)
        print(
            f"{stage:<26}{variant:<38}{r['seconds']:>9.2f}{base['seconds'] / r['seconds']:>9.1f}x"
            f"{r['peak_mb']:>10.0f}{r['peak_mb'] / base['peak_mb']:>8.2f}x"
        )


if __name__ == "__main__":
    main()
