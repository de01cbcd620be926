"""`birdtpu shard`: decode the catalog's recordings once into TFRecord shards with a manifest.

Resumable: rerun after a kill or a full disk and only the unfinished shards are written; a shard
that is missing or truncated (with --verify, any whose bytes differ from their checksum) is
rewritten. Unusable recordings are skipped, logged and listed with their reason in the manifest;
the closing lines count them. A set with no clip, or one that skipped more than --max-skipped
of its recordings, is an error (exit 2) naming the first files and the folder searched.
`--runner beam` writes the shards with an Apache Beam pipeline (the `[beam]` extra): the
DirectRunner in shards.workers processes here, or any runner by `--beam-option --runner=...`;
the shards and manifest equal the local build's byte for byte.
Without shards.dir, the set lives in the shared cache (<output_dir>/shard-cache/<format>-<key>):
`--list` shows the cache's sets with their sizes and the runs that used each.
"""

from birdtpu.commands import add_config_arguments, config_from_args, log
from birdtpu.errors import ConfigError


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--rebuild", action="store_true", help="delete the shard set and build it anew"
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the shard cache of output_dir (sets, clips, hours, MB, runs) and exit",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="read every shard and rewrite those whose sha256 differs from their sidecar",
    )
    parser.add_argument(
        "--runner",
        choices=("local", "beam"),
        default="local",
        help="write the shards in local processes (default) or with an Apache Beam pipeline",
    )
    parser.add_argument(
        "--beam-option",
        dest="beam_options",
        metavar="OPTION",
        action="append",
        default=[],
        help="a Beam pipeline option for --runner beam, e.g. --beam-option=--runner=DataflowRunner "
        "(repeatable; default: the DirectRunner in shards.workers processes)",
    )
    parser.add_argument(
        "--max-skipped",
        type=float,
        metavar="FRACTION",
        help="share of recordings that may be skipped as missing or unusable before the run "
        "is an error (exit 2; default shards.max_skipped, 0.5); a set with no clip always is",
    )


def run(args) -> int:
    if args.max_skipped is not None:
        args.overrides.append(f"shards.max_skipped={args.max_skipped}")
    cfg = config_from_args(args, backend=False)  # no Keras: shards build without TensorFlow
    if args.beam_options and args.runner != "beam":
        raise ConfigError("--beam-option needs --runner beam")
    if args.list:
        return _list(cfg.output_dir)
    from birdtpu.data.prepare import ensure_shards

    manifest = ensure_shards(
        cfg,
        log,
        rebuild=args.rebuild,
        repair=True,
        verify=args.verify,
        beam_options=args.beam_options if args.runner == "beam" else None,
    )
    skipped = manifest["skipped"]
    # the skips' reasons were logged once as the set was built (build_shards)
    print(
        f"{cfg.shard_dir}: {manifest['examples']} clips in {len(manifest['shards'])} shards, "
        f"{manifest['total_seconds'] / 3600:.2f} h of audio, {len(skipped)} skipped"
        + (" (listed in manifest.json)" if skipped else "")
    )
    return 0


def _list(output_dir: str) -> int:
    from birdtpu.data.shardcache import CACHE_DIR, cache_table

    rows = cache_table(output_dir)
    if not rows:
        print(f"{output_dir}/{CACHE_DIR}: no shard sets")
        return 0
    print(f"{'set':<26} {'clips':>8} {'hours':>7} {'classes':>7} {'MB':>9}  runs")
    for r in rows:
        print(
            f"{r['set']:<26} {r['clips']:>8} {r['hours']:>7.2f} {r['classes']:>7} {r['mb']:>9.1f}  "
            + (", ".join(r["runs"]) or "-")
        )
    print(f"{len(rows)} set(s), {sum(r['mb'] for r in rows):.1f} MB in {output_dir}/{CACHE_DIR}")
    return 0
