"""`resnets predict`: the top classes of image files, folders and globs."""

from __future__ import annotations

import argparse
import json
import sys

from .registry import add_normalization, command, int_list, model_options, normalization


def add_model_source(p: argparse.ArgumentParser) -> None:
    """The flags that say which trained model to run: a checkpoint, an ONNX file, or a network with weights."""
    p.add_argument("--checkpoint", help="run folder, .pt checkpoint or resnets .safetensors export")
    p.add_argument("--onnx", help="an ONNX file from `resnets export --format onnx`, run with ONNX Runtime")
    p.add_argument("--weights", help="with --model: a .pth/.safetensors file or a release tag such as torchvision-v1")
    p.add_argument("--model", help="with --weights: the network to build (see `resnets list`)")
    p.add_argument("--shortcut", choices=("A", "B", "C"), help="with --weights: shortcut option of Sec. 3.3")
    p.add_argument("--stride-on", choices=("1x1", "3x3"), help="with --weights: bottleneck conv that subsamples")
    p.add_argument("--views", help="test view: full, center, 10crop or multiscale (default: the run's, as evaluate)")
    p.add_argument("--resize", type=int, help="center/10crop: shorter side before cropping (default: the run's, 256)")
    p.add_argument("--crop", type=int, help="center/10crop: crop side (default: the run's, 224)")
    p.add_argument("--scales", default="224,256,384,480,640", help="multiscale: shorter sides, comma-separated")
    p.add_argument("--batch-size", type=int, default=32, help="crops per forward pass")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the network runs")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("auto", "fp32", "bf16", "fp16", "int8"),
        help="forward precision: autocast (bf16, fp16, auto), or int8 = ONNX Runtime's int8 graph (on the CPU; with "
        "--calibration, or --onnx FILE of `export --int8`)",
    )
    p.add_argument(
        "--calibration",
        help="with --precision int8: a folder of images to calibrate the int8 graph on (built once and cached)",
    )
    p.add_argument(
        "--calibration-images", type=int, help="with --calibration: how many of its images to use (default 512)"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx"),
        help="what runs the network: default auto = ONNX Runtime where it is the measured fastest correct path "
        "(CPU, fp32, one input size; exported once and cached), else PyTorch; see docs/performance.md",
    )
    add_normalization(p)


def predictor_from(args: argparse.Namespace):
    """The Predictor that the model-source flags of `add_model_source` describe."""
    from ..core.errors import UserError
    from ..inference import load_predictor

    view = args.views.strip() if args.views else None
    if view is not None and ("," in view or not view):
        raise UserError(f"--views {args.views!r}: predict scores one view: full, center, 10crop or multiscale")
    return load_predictor(
        args.checkpoint,
        model=args.model,
        weights=args.weights,
        onnx=args.onnx,
        options=model_options(args),
        view=view,
        resize=args.resize,
        crop=args.crop,
        scales=int_list(args.scales, "--scales"),
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        backend=args.backend,
        normalization=normalization(args),
        calibration=args.calibration,
        calibration_images=args.calibration_images,
    )


def _add_predict(p: argparse.ArgumentParser) -> None:
    p.description = (
        "The top classes of images, preprocessed exactly as `resnets evaluate` preprocesses them for the same model "
        "and view. Bad images (unreadable, or too large for the view) are reported and skipped (or stop the run with "
        "--strict); other files in folders are ignored. A model that takes one input size (a CIFAR model) under "
        "the full view gets images of other sizes resized to it."
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="image file, folder (walked recursively) or glob; none: the package's 10 CIFAR-10 sample images (one per "
        "class, CIFAR models only)",
    )
    add_model_source(p)
    p.add_argument("--top-k", type=int, default=5, help="classes listed per image")
    p.add_argument(
        "--json", action="store_true", help="print one JSON list of {file, top: [{label, index, probability}]}"
    )
    p.add_argument("--out", help="stream the results to FILE.csv (one row per image) or FILE.jsonl (one JSON a line)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--strict", action="store_true", help="stop at the first image that cannot be decoded")


@command("predict", _add_predict)
def run_predict(args: argparse.Namespace) -> None:
    """Print the top classes of image files, folders and globs (a table, --json, or --out FILE.csv|.jsonl)."""
    from tqdm import tqdm

    from ..core.errors import UserError
    from ..inference.inputs import collect_images
    from ..inference.output import open_writer, table

    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k} must be at least 1")
    inputs = collect_images(args.paths or _samples(args))
    if args.out:  # neither an image nor the model's run is ever replaced by the results, not even with --overwrite
        from ..engine.run import run_inputs

        given = [*inputs.files, *run_inputs(args.checkpoint or args.onnx or args.weights)]
    writer = open_writer(args.out, args.top_k, overwrite=args.overwrite, inputs=given) if args.out else None
    predictor = predictor_from(args)
    if not args.paths:
        _say_samples(predictor)
    results, bad, resized, complete = [], 0, 0, False
    bar = tqdm(total=len(inputs.files), unit="image", desc="predict", disable=len(inputs.files) <= args.batch_size)
    try:
        for outcome in predictor.predict_files(inputs.files, args.top_k):
            bar.update()
            if outcome.error is not None:
                if args.strict:
                    raise UserError(f"{outcome.error}; fix or remove it, or drop --strict to skip bad images")
                bad += 1
                bar.write(f"resnets predict: skipped {outcome.error}", file=sys.stderr)
                continue
            resized += outcome.resized
            entry = {"file": str(outcome.file), "top": outcome.top}
            if writer is not None:
                writer.write(entry)
            else:
                results.append(entry)
        complete = True
    finally:
        bar.close()
        if writer is not None:
            writer.close(complete)
    done = len(inputs.files) - bad
    if writer is not None:
        print(f"wrote {done} predictions to {args.out}")
    elif args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
    notes = [f"skipped {bad} bad image{'s' * (bad != 1)}"] if bad else []
    notes += [f"ignored {inputs.ignored} non-image file{'s' * (inputs.ignored != 1)}"] if inputs.ignored else []
    if resized:
        h, w = predictor.input_size
        notes.append(f"resized {resized} image{'s' * (resized != 1)} of other sizes to the model's {w}x{h} input")
    if notes:
        print(f"resnets predict: {done} images predicted; {', '.join(notes)}", file=sys.stderr)
    if done == 0:
        raise UserError(f"none of the {len(inputs.files)} files could be predicted; the reasons are above")


def _samples(args: argparse.Namespace) -> list[str]:
    """The package's sample images (one CIFAR-10 test image per class, named by its class), for predict without
    paths; a non-CIFAR --model is refused here, before its weights are fetched."""
    from ..weights.samples import check_cifar_network, sample_images

    check_cifar_network(args.model, "samples")
    return [str(file) for file in sample_images()]


def _say_samples(predictor) -> None:
    """For predict without paths: refuse a model that is not a CIFAR one, else say the package's samples are used."""
    from ..weights.samples import SAMPLES, check_cifar_models

    check_cifar_models([predictor.trained], "samples")
    about = "one CIFAR-10 test image per class, each named by its class"
    print(
        f"resnets predict: no PATH given: predicting the package's sample images ({about}) in {SAMPLES}",
        file=sys.stderr,
    )
