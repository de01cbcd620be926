"""`birdtpu export`: a trained model as SavedModel, TFLite, ONNX or OpenVINO IR for fast CPU inference."""

from birdtpu.commands import add_config_arguments, config_from_args, log
from birdtpu.infer.files import EXPORT_FORMATS, FRONTENDS, read_meta


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--format",
        required=True,
        choices=EXPORT_FORMATS,
        help="savedmodel, tflite / onnx / openvino (float32), openvino-fp16 (float16 weights), "
        "tflite-int8 (dynamic-range int8 weights), onnx-int8 or openvino-int8 (static int8, "
        "calibrated on the check windows); see docs/inference.md",
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
        help="TFLite, ONNX, OpenVINO: compute the mel frontend on the host in front of the "
        "runtime (host, faster) or inside the file (tflite: self-contained; not for ONNX or "
        "openvino-int8); "
        "default: %(default)s",
    )


def run(args) -> int:
    cfg = config_from_args(args)
    from birdtpu.infer.export import export_model
    from birdtpu.infer.parity import check_windows_for
    from birdtpu.infer.predict import model_paths

    model_path = args.model or model_paths(cfg)[0]
    check, where = check_windows_for(cfg, model_path, log)
    if read_meta(model_path).get("teacher"):  # an embedding_head run: its head (docs/teachers.md)
        from birdtpu.teachers.head_export import export_head as export_model
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
        f"on {where}, same top class on {side['top1_agreement']:.1%}"
    )
    return 0
