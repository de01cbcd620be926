"""`birdtpu catalog`: competition metadata -> one canonical table, cleaned, balanced and folded.

Steps, in order: read every --source (skipping bad rows: see birdtpu.data.catalog); merge;
de-duplicate; drop recordings of the --exclude-finetune sets; drop --corrupt-list entries; with
--check-audio decode every file and drop unusable ones; downsample (--max-per-class); mark rare
classes train-only (--cv-min); assign folds. Upsampling is not a catalog step: copies in the
table would be validated, so `fit` upsamples the training split only (`data.min_per_class`).
Every dropped row is counted in the summary and listed, with its reason, in
`<out>.dropped.csv`; bad metadata rows and unusable recordings are also logged by name.
Without --check-audio, recordings that do not exist are counted and named in a warning; a run
that drops every row is an error naming the first rows and why.
"""

from __future__ import annotations

import argparse

from birdtpu.commands import log
from birdtpu.data.layouts import LAYOUTS, describe
from birdtpu.errors import DataError

GROUP_BY = {"recording": "filepath", "author": "author", "none": None}
FORMAT_NAMES = " ".join(LAYOUTS)  # catalog.FORMATS, without pandas


def add_arguments(parser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "source formats (what FORMAT=DIR expects; --audio-dir replaces the audio folder):\n"
        + describe()
    )
    parser.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="FORMAT=DIR",
        help=f"a dataset to read (repeatable, in priority order for de-duplication); "
        f"FORMAT is one of: {FORMAT_NAMES} (layouts below)",
    )
    parser.add_argument(
        "--audio-dir",
        action="append",
        default=[],
        metavar="PATH",
        help="where the audio of the n-th --source is (repeatable, in --source order): "
        "relative to its DIR, absolute, or '.' for DIR itself; default: the format's folder",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="write the table (.csv, .csv.gz or .parquet) with "
        "FILE.classes.txt and FILE.dropped.csv beside it",
    )
    parser.add_argument(
        "--classes",
        metavar="FILE",
        help="class list of a fine-tuning set (one a line, JSON "
        "list, or sample_submission.csv); a row whose primary label is outside it is skipped, "
        "a secondary label outside it goes to other_labels",
    )
    parser.add_argument(
        "--exclude-finetune",
        action="append",
        default=[],
        metavar="FORMAT=DIR",
        help="drop recordings (same xc_id) that are in this fine-tuning set (repeatable)",
    )
    parser.add_argument(
        "--dedupe",
        default="xc_id",
        metavar="KEYS",
        help="columns that identify a recording across sources, comma-separated "
        "(default xc_id; the notebooks' rule is xc_id,label,author; 'none' keeps all)",
    )
    parser.add_argument(
        "--corrupt-list",
        action="append",
        default=[],
        metavar="FILE",
        help="JSON or text list of files to drop (repeatable)",
    )
    parser.add_argument(
        "--check-audio",
        action="store_true",
        help="decode every recording; drop unreadable, empty, all-zero or NaN ones and "
        "write their list to FILE.corrupt.json (reusable as --corrupt-list)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes for --check-audio (default 1)"
    )
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=0,
        metavar="N",
        help="downsample classes to at most N rows (seeded; default off)",
    )
    parser.add_argument(
        "--min-per-class",
        type=int,
        default=0,
        metavar="N",
        help="not a catalog step: set data.min_per_class in the recipe (fit upsamples the "
        "training split only); an error if given",
    )
    parser.add_argument(
        "--cv-min",
        type=int,
        default=0,
        metavar="N",
        help="classes with fewer than N rows are train-only, never validated (default off)",
    )
    parser.add_argument(
        "--folds", type=int, default=5, help="number of folds (default 5; 0: no fold column)"
    )
    parser.add_argument(
        "--fold-method",
        choices=("stratified", "multilabel"),
        default="stratified",
        help="stratified on the primary label, or multilabel (iterative) on all labels",
    )
    parser.add_argument(
        "--group-by",
        choices=tuple(GROUP_BY),
        default="recording",
        help="rows of one group never land in two folds (default recording)",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed of sampling and folds (default 42)"
    )


def _spec(text: str, option: str) -> tuple[str, str]:
    fmt, sep, root = text.partition("=")
    if not sep or not fmt or not root:
        raise DataError(
            f"{option} {text!r}: expected FORMAT=DIR, e.g. birdclef2024=/data/birdclef-2024"
        )
    return fmt.strip(), root.strip()


def _sidecar(out: str, suffix: str) -> str:
    for ext in (".csv.gz", ".csv", ".parquet"):
        if out.endswith(ext):
            return out[: -len(ext)] + suffix
    return out + suffix


def _check_args(args) -> None:
    if len(args.audio_dir) > len(args.source):
        raise DataError(
            f"{len(args.audio_dir)} --audio-dir for {len(args.source)} --source: give one per "
            "source, in the same order"
        )
    for name in ("workers", "max_per_class", "min_per_class", "cv_min", "folds"):
        if getattr(args, name) < 0:
            raise DataError(f"--{name.replace('_', '-')} must not be negative")
    if args.folds == 1:
        raise DataError("--folds 1 cannot validate anything: use 0 (no folds) or at least 2")
    if args.min_per_class:
        raise DataError(
            "--min-per-class: copies in the table would land in validation folds; set "
            f"data.min_per_class: {args.min_per_class} in the recipe instead (fit upsamples the "
            "training split only, after the split)"
        )


def build(args, say=log):
    """(table, dropped rows, classes, summary lines) for the parsed arguments."""
    import pandas as pd

    from birdtpu.data import catalog

    _check_args(args)
    classes = catalog.read_class_list(args.classes) if args.classes else None
    bad: list = []
    audio = args.audio_dir + [None] * (len(args.source) - len(args.audio_dir))
    df = catalog.merge(
        [
            catalog.read_source(*_spec(s, "--source"), classes, bad, audio_dir=a)
            for s, a in zip(args.source, audio)
        ]
    )
    skipped = pd.concat([catalog.no_drops(), *bad], ignore_index=True)
    for detail in skipped["detail"]:
        say(f"catalog: skip {detail}")
    read = pd.concat([df["source"], skipped["source"]]).value_counts(sort=False)
    df, drops, notes = _clean(df, args, say)
    drops.insert(0, skipped)
    if not len(df):
        raise DataError(f"all {int(read.sum())} rows dropped ({_first_drops(drops)})")
    if len(skipped):
        notes.append(
            catalog.skip_summary("catalog", skipped["reason"], int(read.sum()), "metadata rows")
        )
    df, drops, notes = _balance_and_fold(df, args, drops, notes)
    dropped = pd.concat([catalog.no_drops(), *drops], ignore_index=True)
    return (
        df,
        dropped,
        classes or catalog.label_map(df),
        _summary(read, df, dropped, args) + notes,
    )


def _first_drops(drops, n: int = 3) -> str:
    """The first `n` dropped rows: file, reason and detail."""
    import pandas as pd

    rows = pd.concat(drops, ignore_index=True).head(n)
    return "; ".join(
        f"{r.filepath}: {r.reason}" + (f" ({r.detail})" if isinstance(r.detail, str) else "")
        for r in rows.itertuples()
    )


def _clean(df, args, say):
    """De-duplicate, exclude the fine-tuning sets, drop listed and (with --check-audio) unusable files."""
    from birdtpu.data import catalog

    drops, notes = [], []
    if args.dedupe != "none":
        df, dropped = catalog.deduplicate(df, [k.strip() for k in args.dedupe.split(",")])
        drops.append(dropped)
    for spec in args.exclude_finetune:
        bad: list = []
        df, dropped = catalog.exclude_recordings(
            df, catalog.read_source(*_spec(spec, "--exclude-finetune"), bad_rows=bad)
        )
        drops.append(dropped)
        if bad:
            notes.append(
                f"--exclude-finetune {spec}: {sum(map(len, bad))} bad row(s) of its metadata ignored "
                f"(first: {bad[0]['detail'].iat[0]})"
            )
    for path in args.corrupt_list:
        df, dropped, unmatched = catalog.drop_listed(df, catalog.read_corrupt_list(path))
        drops.append(dropped)
        if unmatched:
            notes.append(
                f"{path}: {len(unmatched)} entr{'y' if len(unmatched) == 1 else 'ies'} matched no "
                f"row (first: {unmatched[0]})"
            )
    if args.check_audio:
        from birdtpu.progress import Progress

        files = df["filepath"].nunique()
        say(f"catalog: checking {files} recordings with {args.workers} worker(s)")
        with Progress(files, say, name="catalog: check-audio") as progress:
            df, dropped = catalog.drop_unusable(df, args.workers, progress)
        for path, reason in (
            dropped[["filepath", "detail"]].drop_duplicates().itertuples(index=False)
        ):
            say(f"catalog: skip {path}: {reason}")
        drops.append(dropped)
    else:
        notes.extend(catalog.missing_warning(df))
    return df, drops, notes


def _balance_and_fold(df, args, drops, notes):
    """Downsample, mark rare classes train-only, fold."""
    import numpy as np

    from birdtpu.data import catalog, folds, sampling

    if args.max_per_class:
        df = df.assign(_row=np.arange(len(df)))
        kept = sampling.downsample(df, args.max_per_class, args.seed)
        removed = df[~df["_row"].isin(kept["_row"])]
        drops.append(
            catalog.dropped_rows(removed, "downsampled", f"over {args.max_per_class} per class")
        )
        df = kept.drop(columns="_row")
    if args.cv_min:
        df = sampling.filter_rare(df, args.cv_min)
    if args.folds:
        df = df.assign(
            fold=folds.make_folds(
                df, args.folds, args.seed, args.fold_method, GROUP_BY[args.group_by]
            )
        )
    return df, drops, notes


def _summary(read, df, dropped, args) -> list[str]:
    """Lines: rows per source, what was dropped and why, classes, folds."""
    other = int(df["other_labels"].map(len).sum())
    classes = [
        f"classes: {df['label'].nunique()} primary labels, "
        f"{len({x for labels in df['labels'] for x in labels})} with the secondary ones"
        + (
            f"; {other} secondary label(s) without a class code kept in other_labels"
            if other
            else ""
        )
    ]
    if "cv" in df.columns:
        classes.append(
            f"train-only (cv=False, classes under {args.cv_min} rows): {int((~df['cv']).sum())} row(s)"
        )
    return _source_lines(read, df, dropped) + _drop_lines(dropped) + classes + _fold_lines(df, args)


def _source_lines(read, df, dropped) -> list[str]:
    lines = [f"{'source':<18}{'read':>9}{'kept':>9}{'dropped':>9}{'classes':>9}"]
    for source, n in read.items():
        mine = df[df["source"] == source]
        lost = int((dropped["source"] == source).sum())
        lines.append(f"{source:<18}{n:>9}{len(mine):>9}{lost:>9}{mine['label'].nunique():>9}")
    lines.append(
        f"{'total':<18}{int(read.sum()):>9}{len(df):>9}{len(dropped):>9}{df['label'].nunique():>9}"
    )
    return lines


def _drop_lines(dropped) -> list[str]:
    if not len(dropped):
        return ["dropped 0 rows"]
    lines = [f"dropped {len(dropped)} row(s):"]
    for reason, group in dropped.groupby("reason", sort=False):
        detail = ""
        if reason == "unusable audio":
            kinds = group["detail"].str.split(" (", regex=False).str[0].value_counts()
            detail = " (" + ", ".join(f"{k}: {v}" for k, v in kinds.items()) + ")"
        lines.append(f"  {reason:<22}{len(group):>7}{detail}")
    return lines


def _fold_lines(df, args) -> list[str]:
    if "fold" not in df.columns:
        return []
    sizes = df["fold"].value_counts().reindex(range(-1, args.folds), fill_value=0)
    shown = ", ".join(f"{'train-only' if k < 0 else k}: {v}" for k, v in sizes.items())
    lines = [f"folds ({args.fold_method}, by {args.group_by}, seed {args.seed}): {shown}"]
    empty = [str(k) for k, v in sizes.items() if k >= 0 and not v]
    if empty:
        lines.append(
            f"warning: fold(s) {', '.join(empty)} validate nothing: too few {args.group_by}s "
            "per class (a class's only group is always train-only)"
        )
    return lines


def run(args) -> int:
    from birdtpu import fs
    from birdtpu.data import catalog

    df, dropped, classes, lines = build(args)
    print("\n".join(lines))
    if args.out:
        catalog.write_table(df, args.out)
        fs.atomic_write_text(_sidecar(args.out, ".classes.txt"), "\n".join(classes) + "\n")
        catalog.write_table(dropped, _sidecar(args.out, ".dropped.csv"))
        written = [args.out, _sidecar(args.out, ".classes.txt"), _sidecar(args.out, ".dropped.csv")]
        if args.check_audio:
            bad = dropped[dropped["reason"] == "unusable audio"]
            fs.write_json(
                _sidecar(args.out, ".corrupt.json"), dict(zip(bad["filepath"], bad["detail"]))
            )
            written.append(_sidecar(args.out, ".corrupt.json"))
        print(f"wrote {len(df)} rows, {len(classes)} classes: {', '.join(written)}")
    return 0
