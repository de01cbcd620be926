"""`birdtpu pseudo`: pseudo-label unlabelled soundscapes (noisy student) into TFRecord shards.

Every window of the soundscapes of `pseudo.soundscapes` is predicted by the run's model, or by
the blend of `--runs` (run folders or model files), with the recipe's `infer` settings (TTA,
smoothing, stacker); the probabilities become soft targets (`pseudo.power`, `pseudo.floor`,
`pseudo.top_k`), and the windows are written as shards of fold -1 with a manifest that records
their provenance, in `<pseudo.output_dir or run dir/pseudo>/round-<k>/`. Resumable: a rerun after
a kill writes only the missing shards. Soundscapes that cannot be decoded are skipped and
counted (exit 1).
"""

import json

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--round", type=int, metavar="K", help="noisy-student round (default pseudo.round, 1)"
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="DIR",
        help="teacher runs (folders with model.keras) or model files, blended "
        "(default pseudo.runs, else infer.model, else this run's model)",
    )


def run(args) -> int:
    if args.round is not None:
        args.overrides.append(f"pseudo.round={args.round}")
    if args.runs:
        args.overrides.append(f"pseudo.runs={json.dumps(args.runs)}")
    cfg = config_from_args(args)
    from birdtpu.infer.pseudo import round_dir, write_pseudo

    manifest = write_pseudo(cfg, log)
    skipped = manifest["skipped"]
    print(
        f"{round_dir(cfg)}: {manifest['examples']} windows of {manifest['recordings']} soundscapes "
        f"in {len(manifest['shards'])} shards ({len(manifest['written'])} written), "
        f"{len(skipped)} skipped" + (" (listed in manifest.json)" if skipped else "")
    )
    if skipped:
        from birdtpu.data.catalog import skip_summary

        print(
            skip_summary(
                "pseudo", [s["reason"] for s in skipped], manifest["inputs"], "soundscapes"
            )
        )
    return 1 if skipped else 0
