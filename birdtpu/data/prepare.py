"""From a config to a ready shard set: synthesize the demo data, read the catalog, fold, shard."""

from __future__ import annotations

import pandas as pd

from birdtpu import fs
from birdtpu.data import catalog, folds, sampling, shardcache, shards
from birdtpu.errors import DataError
from birdtpu.fs import join


def ensure_dataset(cfg, log=print) -> None:
    """Write the synthetic dataset into `data.root` when `data.synthesize` and it has no metadata.

    Only under the synthetic set's own names (data.metadata, data.audio_dir at their defaults) and
    into an empty folder or an earlier synthetic set: else a DataError, and nothing is written.
    """
    import posixpath

    meta = join(cfg.data.root, cfg.data.metadata)
    if cfg.data.table or cfg.data.format != "birdclef" or fs.exists(meta):
        return
    if not cfg.data.synthesize:
        raise DataError(
            f"{meta}: metadata file not found (set data.root, or data.synthesize: true for the demo)"
        )
    from birdtpu.data.synth import AUDIO_DIR, METADATA, check_target, write_dataset

    for key, value, own in (
        ("metadata", cfg.data.metadata, METADATA),
        ("audio_dir", cfg.data.audio_dir, AUDIO_DIR),
    ):
        if posixpath.normpath(value) != own:
            raise DataError(
                f"{meta}: metadata file not found, and data.synthesize writes {own}, not "
                f"data.{key}={value}: check data.root and data.{key}, or set data.synthesize: false"
            )
    check_target(cfg.data.root)
    log(f"synth: {meta} not found, writing the synthetic dataset")
    write_dataset(cfg.data.root, cfg.synth, log=log)


def load_catalog(cfg, log=print) -> tuple[pd.DataFrame, list[str]]:
    """The run's catalog (from `data.table`, or root's metadata in `data.format`), folded, and its
    label map: every recording once. A table that has a `fold` column keeps its folds. Class
    balance (`data.min_per_class`, `data.max_per_class`) is the training pipeline's, after the
    split (`birdtpu.data.balance`). Bad metadata rows (duplicates, paths outside the root,
    malformed labels) are logged, counted and skipped. `data.taxa` keeps the classes of those
    taxa (`birdtpu.data.catalog.taxa`), before the folds."""
    d = cfg.data
    bad: list = []
    if d.table:
        df = catalog.read_table(d.table)
    elif d.format == "birdclef":
        df = catalog.read_birdclef(d.root, d.metadata, d.audio_dir, bad_rows=bad)
    else:
        df = catalog.read_source(d.format, d.root, bad_rows=bad)
    if bad:
        skipped = pd.concat(bad, ignore_index=True)
        for detail in skipped["detail"]:
            log(f"catalog: skip {detail}")
        log(
            catalog.skip_summary(
                "catalog", skipped["reason"], len(df) + len(skipped), "metadata rows"
            )
        )
    if d.taxa:
        from birdtpu.data.catalog.taxa import taxa_catalog

        df = taxa_catalog(df, d.root, d.taxa, log)
    if d.cv_min:
        df = sampling.filter_rare(df, d.cv_min)
    if "fold" not in df.columns:
        df["fold"] = folds.make_folds(
            df, d.num_folds, cfg.runtime.seed, d.fold_method, d.group_by or None
        )
    return df.reset_index(drop=True), catalog.label_map(df)


def ensure_shards(
    cfg,
    log=print,
    rebuild: bool = False,
    repair: bool = False,
    verify: bool = False,
    beam_options: list[str] | None = None,
) -> dict:
    """The manifest of the run's shard set, building (or finishing) it where needed (with
    `beam_options`, as an Apache Beam pipeline: `build_shards`).

    The shards of a finished set are checked first: a missing one or one of another size (with
    `verify`, another sha256) is rewritten with `repair` (`birdtpu shard`), else a DataError names it.
    """
    if not cfg.shards.dir:  # the cache key hashes the metadata: the synthetic set comes first
        ensure_dataset(cfg, log)
    out = cfg.shard_dir
    settings = shardcache.shard_settings(cfg)
    if rebuild and fs.exists(out):
        fs.rmtree(out)
    if fs.exists(join(out, shards.MANIFEST)):
        manifest = shards.read_manifest(out)
        if manifest.get("config") != settings:
            raise DataError(
                f"{out}: shards were built with other data/shard settings; "
                "use another shards.dir or `birdtpu shard --rebuild`"
            )
        problems = shards.check_shards(out, manifest, verify)
        if not problems:
            shards.check_skipped(manifest, cfg.shards.max_skipped, out)
            log(f"shards: {out}: {manifest['examples']} clips, built before; nothing to decode")
            return manifest
        if not repair:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise DataError(
                f"{problems[0]}{more}; rerun `birdtpu shard` to rewrite {'them' if more else 'it'}"
            )
        for problem in problems:
            log(f"shard: rewriting {problem}")
    if cfg.shards.dir:  # (without it, written above)
        ensure_dataset(cfg, log)
    df, classes = load_catalog(cfg, log)
    weights = catalog.targets(df, classes, cfg.data.secondary_weight)
    manifest = shards.build_shards(
        df,
        classes,
        out,
        cfg.data.sample_rate,
        cfg.shards,
        settings,
        weights,
        log,
        seed=cfg.runtime.seed,
        verify=verify,
        beam_options=beam_options,
    )
    shards.check_skipped(manifest, cfg.shards.max_skipped, out)
    return manifest
