"""`birdtpu export`: a trained model as SavedModel or TFLite (float32, int8) for fast CPU inference."""

from birdtpu.commands import add_config_arguments, config_from_args, log
from birdtpu.infer.files import EXPORT_FORMATS, FRONTENDS


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--format",
        required=True,
        choices=EXPORT_FORMATS,
        help="savedmodel, tflite (float32) or tflite-int8 (dynamic-range int8 weights)",
    )
    parser.add_argument(
        "--model", help="the .keras model (default: infer.model, else <run dir>/model.keras)"
    )
    parser.add_argument(
        "--out", help="where to write (default: next to the model, e.g. model_fp32.tflite)"
    )
    parser.add_argument(
        "--frontend",
        choices=FRONTENDS,
        default="host",
        help="TFLite only: compute the mel frontend on the host in front of the interpreter "
        "(host, faster) or inside the file (tflite, self-contained); default: %(default)s",
    )


def run(args) -> int:
    cfg = config_from_args(args)
    from birdtpu.infer.export import export_model
    from birdtpu.infer.parity import check_windows_for
    from birdtpu.infer.predict import model_paths

    model_path = args.model or model_paths(cfg)[0]
    check = check_windows_for(cfg, model_path, log)
    side = export_model(
        model_path,
        args.format,
        out=args.out or "",
        frontend=args.frontend,
        check=check,
        batch_size=cfg.infer.batch_size,
        threads=cfg.infer.threads,
        log=log,
    )
    print(
        f"{side['path']}: {args.format}, largest difference to {model_path} {side['max_abs_diff']:.2e} "
        f"on {side['check_windows']} windows, same top class on {side['top1_agreement']:.1%}"
    )
    return 0
