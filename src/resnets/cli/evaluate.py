"""`resnets evaluate` and `resnets export`: test a trained model, write its weights."""

from __future__ import annotations

import argparse
import json
import sys

from ..core.errors import UserError
from .flags import add_config_flags, field_default, given_values
from .predict import VIEW_GROUPS
from .registry import add_weights_source, command, int_list, model_options, normalization


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    from ..evaluation.options import EvaluateOptions

    p.description = (
        "Top-1 and top-5 error of a trained model, or of an ensemble (softmax averaged, Table 5), under the test "
        "views of Sec. 3.4; architecture and normalisation come from the files (--weights of another implementation, "
        "which carry none: --normalize or --mean/--std, else ImageNet's, said on stderr)."
    )
    p.add_argument(
        "--checkpoint", action="append", default=[], help="run folder, .pt or resnets .safetensors; repeat: ensemble"
    )
    add_weights_source(p, "weights to evaluate")
    add_config_flags(p, EvaluateOptions, {"data": "the images scored", **VIEW_GROUPS}, field_default)
    p.add_argument("--json", action="store_true", help="print one JSON object with every view's errors and seconds")


@command("evaluate", _add_evaluate)
def run_evaluate(args: argparse.Namespace) -> None:
    """Evaluate checkpoints (an ensemble) or weights on a split under test views; prints errors in percent."""
    from pathlib import Path

    from ..evaluation.options import EvaluateOptions
    from ..evaluation.protocol import default_views, evaluate_models, format_result, load_models

    o = EvaluateOptions(**given_values(args, EvaluateOptions))
    scales = int_list(o.scales, "--scales")
    views = [v.strip() for v in o.views.split(",") if v.strip()] if o.views is not None else None
    if views == []:
        raise UserError("--views is empty; pass e.g. --views center,10crop,multiscale")
    if o.workers is not None and o.workers < 0:
        raise UserError(f"--workers {o.workers} must be 0 (decode here) or more")
    data, split, notice = _data_and_split(args)
    given = normalization(args, data=args.data)
    models = load_models(args.checkpoint, args.weights, args.model, normalization=given, **model_options(args))
    names = [*args.checkpoint, *([f"{args.weights} ({args.model})"] if args.weights else [])]
    if notice is not None:  # the package's slice: CIFAR models only, and said so
        from ..weights.samples import check_cifar_models

        check_cifar_models(models, "slice")
        print(f"resnets evaluate: {notice}", file=sys.stderr)
    result = evaluate_models(
        models,
        names,
        data,
        split,
        views or default_views(models),
        resize=o.resize,
        crop=o.crop,
        scales=scales,
        limit=o.limit,
        labels_file=Path(o.val_labels) if o.val_labels else None,
        batch_size=o.batch_size,
        workers=o.workers,
        device=o.device,
        precision=o.precision,
        progress=True,  # on stderr: --json output on stdout stays clean
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        name = (
            models[0].name if len(models) == 1 else f"ensemble of {len(models)} ({', '.join(m.name for m in models)})"
        )
        print(format_result(result, name))


def _data_and_split(args: argparse.Namespace) -> tuple[str, str, str | None]:
    """--data and --split (default val), or without --data the package's CIFAR-10 test slice, its split and the line
    that says so (a non-CIFAR --model is refused here, before its weights are fetched)."""
    if args.data is not None:
        return args.data, args.split or "val", None
    from ..weights.samples import SLICE_SPLIT, TEST_SLICE, check_cifar_network, slice_notice

    notice = slice_notice(args.split)
    check_cifar_network(args.model, "slice")
    return str(TEST_SLICE), SLICE_SPLIT, notice


def _add_export(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Export a trained model (a run, or --weights of another implementation with --model): its weights "
        "(torchvision key names) with its metadata and normalisation as safetensors, or an ONNX graph taking the "
        "normalised NCHW input, checked against PyTorch in ONNX Runtime."
    )
    p.add_argument("--checkpoint", help="run folder or .pt checkpoint (or: --weights with --model)")
    add_weights_source(p, "weights to export")
    p.add_argument("--format", default="safetensors", choices=("safetensors", "onnx"), help="what to write")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument(
        "--opset", type=int, help="onnx: the ONNX opset, 18 up to the installed onnx's newest (default: the exporter's)"
    )
    p.add_argument(
        "--dynamic-batch",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="onnx: any batch size (default); --no-dynamic-batch fixes it at 1",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="onnx: quantize to int8 with ONNX Runtime (static QDQ, per-channel weights), calibrated on --calibration",
    )
    p.add_argument("--calibration", help="with --int8: a folder of images (any, walked recursively) to calibrate on")
    p.add_argument("--calibration-images", type=int, default=512, help="with --int8: calibration images used")
    p.add_argument(
        "--check",
        help="with --int8: a labelled folder (class subfolders): print both top-1 errors and refuse past --max-drop",
    )
    p.add_argument(
        "--max-drop", type=float, default=1.0, help="with --check: most top-1 error points int8 may add (default 1.0)"
    )


@command("export", _add_export)
def run_export(args: argparse.Namespace) -> None:
    """Export weights to safetensors, or an ONNX graph checked in ONNX Runtime."""
    from pathlib import Path

    from ..core.atomic import check_not_input, check_output
    from ..engine.run import run_inputs
    from ..evaluation.protocol import load_models
    from ..weights.files import export_safetensors

    if (args.checkpoint is None) == (args.weights is None):
        raise UserError("export needs --checkpoint RUN_OR_FILE, or --weights FILE with --model NAME (one of them)")
    check_output(Path(args.out), force=args.force)  # before loading: a mistaken --out costs nothing
    check_not_input(Path(args.out), run_inputs(args.checkpoint or args.weights))  # not even with --force
    if args.format == "onnx":
        from ..inference.onnx_export import check_opset

        check_opset(args.opset)
    else:  # the ONNX graph's flags would be ignored: say so
        graph_flags = {"--opset": args.opset is not None, "--no-dynamic-batch": not args.dynamic_batch}
        flag = next((f for f, given in graph_flags.items() if given), None)
        if flag is not None:
            raise UserError(f"{flag} applies to --format onnx; drop it, or add --format onnx")
    calibration = _int8_flags(args)
    checkpoints = [args.checkpoint] if args.checkpoint else []
    given = normalization(args)
    (trained,) = load_models(checkpoints, args.weights, args.model, normalization=given, **model_options(args))
    if calibration is not None:
        _export_int8(trained, calibration, args)
        return
    if args.format == "onnx":
        from ..inference.onnx_export import export_onnx

        check = export_onnx(trained, Path(args.out), opset=args.opset, dynamic_batch=args.dynamic_batch)
        print(f"wrote {args.out}: ONNX Runtime within {check.max_difference:.2g} of PyTorch on {check.batch} images")
        return
    export_safetensors(trained, Path(args.out))
    print(f"wrote {args.out}")


def _int8_flags(args: argparse.Namespace):
    """The calibration images of `export --int8` (None without --int8), once its flags are checked together."""
    from pathlib import Path

    from ..inference.quantize import calibration_set, check_max_drop

    if not args.int8:
        extra = [flag for flag, value in (("--calibration", args.calibration), ("--check", args.check)) if value]
        if extra:
            raise UserError(f"{' and '.join(extra)} apply to --int8; add --format onnx --int8, or drop them")
        return None
    if args.format != "onnx":
        raise UserError(f"--int8 quantizes an ONNX graph; use --format onnx, not --format {args.format}")
    if not args.dynamic_batch:
        raise UserError("--int8 calibrates on batches of images; drop --no-dynamic-batch")
    if args.calibration is None:
        raise UserError("--int8 needs --calibration DIR, a folder of images to calibrate on")
    if args.check is not None and not Path(args.check).expanduser().is_dir():
        raise UserError(f"--check {args.check} is not a folder; pass a folder of class subfolders of images")
    check_max_drop(args.max_drop)
    return calibration_set(args.calibration, args.calibration_images)


def _export_int8(trained, calibration, args: argparse.Namespace) -> None:
    """Export the fp32 graph to a temporary file, quantize it, and write the int8 graph to --out once it is checked."""
    import tempfile
    from pathlib import Path

    from ..inference.onnx_export import export_onnx
    from ..inference.onnx_runtime import load_onnx
    from ..inference.predictor import Predictor
    from ..inference.quantize import quantize

    with tempfile.TemporaryDirectory() as work:
        fp32_file = Path(work) / "fp32.onnx"
        exported = export_onnx(trained, fp32_file, opset=args.opset)
        print(f"fp32 graph: ONNX Runtime within {exported.max_difference:.2g} of PyTorch on {exported.batch} images")
        fp32 = Predictor(
            load_onnx(fp32_file), source=trained.name, device="cpu", channels_last=False, backend="onnxruntime"
        )
        comparison = quantize(fp32, fp32_file, calibration, Path(args.out), check=args.check, max_drop=args.max_drop)
    print(comparison.summary())
    print(f"wrote {args.out}: int8 (QDQ, per-channel weights), calibrated on {len(calibration.files)} images")
