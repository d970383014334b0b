"""`resnets predict`: the top classes of image files, folders and globs."""

from __future__ import annotations

import argparse
import json
import sys

from .flags import add_config_flags, field_default, given_values
from .registry import add_normalization, command, int_list, model_options, normalization

# The argument groups of the flags that say how a model runs (evaluate, predict, serve).
VIEW_GROUPS = {
    "test view": "how images become the network's inputs, as `resnets evaluate` makes them (Sec. 3.4)",
    "speed": "where and how fast the network runs",
}


def add_model_source(p: argparse.ArgumentParser) -> None:
    """The flags that say which trained model to run: a checkpoint, an ONNX file, or a network with weights."""
    p.add_argument("--checkpoint", help="run folder, .pt checkpoint or resnets .safetensors export")
    p.add_argument("--onnx", help="an ONNX file from `resnets export --format onnx`, run with ONNX Runtime")
    p.add_argument("--weights", help="with --model: a .pth/.safetensors file or a release tag such as torchvision-v1")
    p.add_argument("--model", help="with --weights: the network to build (see `resnets list`)")
    from ..evaluation.options import PredictOptions
    from ..models.blocks import SHORTCUTS, STRIDE_ON

    p.add_argument("--shortcut", choices=SHORTCUTS, help="with --weights: shortcut option of Sec. 3.3")
    p.add_argument("--stride-on", choices=STRIDE_ON, help="with --weights: bottleneck conv that subsamples")
    add_config_flags(p, PredictOptions, VIEW_GROUPS, field_default)
    add_normalization(p)


def predict_options(args: argparse.Namespace):
    """The PredictOptions of the flags, checked by type and choice."""
    from ..evaluation.options import PredictOptions

    return PredictOptions(**given_values(args, PredictOptions))


def predictor_from(args: argparse.Namespace):
    """The Predictor that the model-source flags of `add_model_source` describe."""
    from ..core.errors import UserError
    from ..inference import load_predictor

    o = predict_options(args)
    view = o.views.strip() if o.views else None
    if view is not None and ("," in view or not view):
        raise UserError(f"--views {o.views!r}: predict scores one view: full, center, 10crop or multiscale")
    return load_predictor(
        args.checkpoint,
        model=args.model,
        weights=args.weights,
        onnx=args.onnx,
        options=model_options(args),
        view=view,
        resize=o.resize,
        crop=o.crop,
        scales=int_list(o.scales, "--scales"),
        batch_size=o.batch_size,
        device=o.device,
        precision=o.precision,
        backend=o.backend,
        normalization=normalization(args),
        calibration=o.calibration,
        calibration_images=o.calibration_images,
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
    bar = tqdm(total=len(inputs.files), unit="image", desc="predict", disable=len(inputs.files) <= predictor.batch_size)
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
