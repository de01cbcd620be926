"""`birdtpu shard`: decode the catalog's recordings once into TFRecord shards with a manifest.

Resumable: rerun after a kill or a full disk and only the unfinished shards are written; a shard
that is missing or truncated (with --verify, any whose bytes differ from their checksum) is
rewritten. Unusable recordings are skipped, logged and listed with their reason in the manifest;
the closing lines count them.
"""

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--rebuild", action="store_true", help="delete the shard set and build it anew"
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="read every shard and rewrite those whose sha256 differs from their sidecar",
    )


def run(args) -> int:
    from birdtpu.data.catalog import skip_summary

    cfg = config_from_args(args)
    from birdtpu.data.prepare import ensure_shards

    manifest = ensure_shards(cfg, log, rebuild=args.rebuild, repair=True, verify=args.verify)
    skipped = manifest["skipped"]
    print(
        f"{cfg.shard_dir}: {manifest['examples']} clips in {len(manifest['shards'])} shards, "
        f"{manifest['total_seconds'] / 3600:.2f} h of audio, {len(skipped)} skipped"
    )
    if skipped:
        print(
            skip_summary("shard", [s["reason"] for s in skipped], manifest["inputs"], "recordings")
            + " (listed in manifest.json)"
        )
    return 0
