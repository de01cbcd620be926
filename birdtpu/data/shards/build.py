"""Writing a shard set: each shard decoded and written (in worker processes), resumable, then the
manifest."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from queue import Empty

import numpy as np
import pandas as pd

from birdtpu import fs
from birdtpu.data.catalog import skip_summary
from birdtpu.data.shards.manifest import MANIFEST, SCHEMA_VERSION
from birdtpu.data.shards.plan import CROPS, ShardPlan, WriteOptions, catalog_rows, plan_shards
from birdtpu.data.shards.write import (
    NO_SPACE,
    finished_entries,
    finished_entry,
    remove_temporaries,
    write_shard,
)
from birdtpu.errors import DataError
from birdtpu.fs import join
from birdtpu.progress import Progress

# ----------------------------------------------------------------------------- workers

_QUEUE = None  # a worker's channel for per-row progress


def _init_worker(queue) -> None:
    global _QUEUE
    _QUEUE = queue


def _write_in_worker(plan: ShardPlan, out_dir: str, options: WriteOptions) -> dict:
    return write_shard(plan, out_dir, options, lambda n, s: _QUEUE.put((n, s)))


def _drain(queue, progress: Progress) -> None:
    while True:
        try:
            progress.advance(*queue.get_nowait())
        except Empty:
            return


def _write_all(
    plans: list[ShardPlan],
    out_dir: str,
    options: WriteOptions,
    workers: int,
    progress: Progress,
    beam_options: list[str] | None = None,
):
    """Write `plans`, in-process for one worker, else in spawned processes, or with `beam_options`
    as a Beam pipeline; yields entries as shards finish (all at its end for Beam)."""
    workers = min(workers or fs.cores(), len(plans))
    if beam_options is not None:
        from birdtpu.data.shards.beam import write_with_beam

        write_with_beam(plans, out_dir, options, workers, beam_options)
        for plan in plans:
            entry = finished_entry(out_dir, plan.name, plan.fingerprint)
            if entry is None:
                raise DataError(f"{join(out_dir, plan.name)}: the Beam pipeline did not write it")
            progress.advance(len(plan.rows), entry["seconds"])
            yield entry
        return
    if workers <= 1:
        for plan in plans:
            yield write_shard(plan, out_dir, options, progress.advance)
        return
    ctx = multiprocessing.get_context("spawn")  # the parent may have imported TensorFlow: no fork
    queue = ctx.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,))
    try:
        pending = {pool.submit(_write_in_worker, plan, out_dir, options) for plan in plans}
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _drain(queue, progress)
            for future in done:
                yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _drain(queue, progress)


# ----------------------------------------------------------------------------- build


def build_shards(
    df: pd.DataFrame,
    classes: list[str],
    out_dir: str,
    sample_rate: int,
    shard_cfg,
    config: dict | None = None,
    targets: np.ndarray | None = None,
    log=print,
    *,
    seed: int = 0,
    progress_every: float = 30.0,
    verify: bool = False,
    beam_options: list[str] | None = None,
) -> dict:
    """Write the shards of catalog `df` (with `fold`) into `out_dir` (local or gs://); returns the manifest.

    `shard_cfg` is a ShardConfig; `config` (the settings the set depends on) is stored in the
    manifest; `targets` (rows x classes) default to one-hot of the primary label; `seed` draws the
    random windows. Finished shards of an earlier, interrupted build of the same plan are kept (with
    `verify`, only those whose bytes match their sha256). A full disk raises NoSpaceError; the
    temporary file goes, finished shards stay. With `beam_options` (a list, maybe empty), the
    shards are written by an Apache Beam pipeline with these options (`shard --runner beam`).
    Unusable recordings are skipped, logged and listed in the manifest with their reason.
    """
    if shard_cfg.crop not in CROPS:
        raise DataError(f"shards.crop {shard_cfg.crop!r}: expected one of {', '.join(CROPS)}")
    rows = catalog_rows(df, classes, targets, shard_cfg.crop)
    options = WriteOptions(
        sample_rate,
        shard_cfg.compression,
        shard_cfg.channel,
        shard_cfg.decoder,
        shard_cfg.max_seconds if shard_cfg.crop == "first" else None,
    )
    fs.makedirs(out_dir)
    removed = remove_temporaries(out_dir)
    if removed:
        log(f"shard: removed {removed} temporary file(s) of an interrupted build")
    started = time.time()
    log(f"shard: planning {len(rows)} rows from the headers of their recordings")
    plans, skipped = plan_shards(rows, shard_cfg, options, seed, log)
    planned = sum(end - start for p in plans for r in p.rows for start, end in r["windows"])
    log(
        f"shard: {len(plans)} shards of {planned / 3600:.2f} h of audio planned in {time.time() - started:.1f} s"
    )
    keys = [(p.name, p.fingerprint) for p in plans]
    entries = finished_entries(out_dir, keys, "shard", log, verify)
    todo = [p for p in plans if entries[p.name] is None]
    progress = Progress(sum(len(p.rows) for p in todo), log, progress_every)
    try:
        for n, entry in enumerate(
            _write_all(todo, out_dir, options, shard_cfg.workers, progress, beam_options), 1
        ):
            entries[entry["file"]] = entry
            for bad in entry["skipped"]:
                progress.message(f"shard: skip {bad['file']}: {bad['reason']}")
            progress.message(
                f"shard: [{n}/{len(todo)}] {entry['file']}: {entry['examples']} clips, "
                f"{entry['seconds']:.0f} s"
            )
        build = {
            "sample_rate": sample_rate,
            "seed": seed,
            **{
                k: getattr(shard_cfg, k)
                for k in (
                    "target_mb",
                    "compression",
                    "crop",
                    "max_seconds",
                    "windows",
                    "channel",
                    "decoder",
                )
            },
        }
        manifest = _manifest(
            [entries[p.name] for p in plans], skipped, classes, len(rows), build, config
        )
        fs.write_json(join(out_dir, MANIFEST), manifest)
    except fs.NoSpaceError as err:  # a sidecar or the manifest: the same advice as for a shard
        raise fs.NoSpaceError(err.path, NO_SPACE) from None
    finally:
        progress.close()
    log(
        f"shard: {manifest['examples']} clips, {manifest['total_seconds'] / 3600:.2f} h of audio in "
        f"{len(plans)} shards, {len(manifest['skipped'])} skipped, {time.time() - started:.1f} s -> {out_dir}"
    )
    if manifest["skipped"]:
        log(
            skip_summary(
                "shard",
                [s["reason"] for s in manifest["skipped"]],
                manifest["inputs"],
                "recordings",
            )
            + " (listed in manifest.json)"
        )
    return manifest


def _manifest(
    entries: list[dict],
    skipped: list[dict],
    classes: list[str],
    inputs: int,
    build: dict,
    config: dict | None,
) -> dict:
    per_class: dict[str, int] = {c: 0 for c in classes}
    negatives: dict[str, int] = {}
    per_fold: dict[str, int] = {}
    for e in entries:
        for label, n in e["per_class"].items():
            per_class[label] += n
        for label, n in e["negatives"].items():
            negatives[label] = negatives.get(label, 0) + n
        per_fold[str(e["fold"])] = per_fold.get(str(e["fold"]), 0) + e["examples"]
    return {
        "schema_version": SCHEMA_VERSION,
        "sample_rate": build["sample_rate"],
        "compression": build["compression"],
        "classes": classes,
        "inputs": inputs,
        "recordings": sum(e["recordings"] for e in entries),
        "examples": sum(e["examples"] for e in entries),
        "total_seconds": round(sum(e["seconds"] for e in entries), 3),
        "per_class": per_class,
        "negatives": dict(sorted(negatives.items())),
        "per_fold": per_fold,
        "shards": entries,
        "skipped": skipped + [s for e in entries for s in e["skipped"]],
        "build": build,
        "config": config or {},
    }
