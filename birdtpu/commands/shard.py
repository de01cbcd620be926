"""`birdtpu shard`: decode the catalog's recordings once into TFRecord shards with a manifest.

Resumable: rerun after a kill and only the unfinished shards are written. Unusable recordings are
skipped, logged and listed with their reason in the manifest; the closing lines count them.
"""

from collections import Counter

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--rebuild", action="store_true", help="delete the shard set and build it anew")


def run(args) -> int:
    from birdtpu.data.prepare import ensure_shards

    cfg = config_from_args(args)
    manifest = ensure_shards(cfg, log, rebuild=args.rebuild)
    skipped = manifest["skipped"]
    print(f"{cfg.shard_dir}: {manifest['examples']} clips in {len(manifest['shards'])} shards, "
          f"{manifest['total_seconds'] / 3600:.2f} h of audio, {len(skipped)} skipped")
    if skipped:
        kinds = Counter(s["reason"].split(" (")[0] for s in skipped)
        print("skipped (listed in manifest.json): " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    return 0
