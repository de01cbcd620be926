"""`birdtpu shard`: decode the catalog's recordings once into TFRecord shards with a manifest."""

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--rebuild", action="store_true", help="delete the shard set and build it anew")


def run(args) -> int:
    from birdtpu.data.prepare import ensure_shards

    cfg = config_from_args(args)
    manifest = ensure_shards(cfg, log, rebuild=args.rebuild)
    print(f"{cfg.shard_dir}: {manifest['examples']} clips in {len(manifest['shards'])} shards, "
          f"{len(manifest['skipped'])} skipped")
    return 0
