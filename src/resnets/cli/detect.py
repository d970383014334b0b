"""`resnets detect train|evaluate|predict`: Faster R-CNN C4 (Sec. 4.3) on VOC, labelImg or COCO folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..core.errors import UserError, parse_json
from .flags import add_config_flags, field_default, given_values
from .registry import command


def _add_detect(p: argparse.ArgumentParser) -> None:
    p.description = "Object detection with Faster R-CNN on a ResNet C4 trunk (Sec. 4.3 of the paper)."
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    about = "train (or resume) a detector; writes RUN/last.pt and RUN/metrics.csv; runs under torchrun too"
    _add_train(sub.add_parser("train", help=about))
    _add_evaluate(sub.add_parser("evaluate", help="map_50_voc07, map_50 and map of a detector or of a detections file"))
    _add_predict(sub.add_parser("predict", help="detect objects in image files, folders or globs"))


# The argument groups of `resnets detect train --help`, in this order; each DetectionTrainConfig field names its group.
TRAIN_GROUPS = {
    "data": "the annotated images and their augmentation",
    "model": "Faster R-CNN C4 on a ResNet trunk (Sec. 4.3); any other setting with --set",
    "schedule": "the optimisation (py-faster-rcnn's: SGD, lr 0.001, momentum 0.9; weight decay 1e-4)",
    "precision and speed": "how fast, not what, the run learns",
    "run": "the run folder, its seed and its checkpoints",
}


def _add_train(t: argparse.ArgumentParser) -> None:
    """`detect train`'s flags: one per DetectionTrainConfig field, then the recipe, --set and the run's own."""
    from ..detection.config import DetectionTrainConfig

    groups = add_config_flags(t, DetectionTrainConfig, TRAIN_GROUPS, field_default)
    groups["model"].add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any model setting, e.g. rpn_post_nms_test=100 (see resnets.detection.FasterRCNNConfig); repeatable",
    )
    run = groups["run"]
    run.add_argument("--recipe", help="a detection recipe: detection-voc-paper (the paper's) or a .toml file")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    run.add_argument(
        "--force", action="store_true", help="replace files in --out that no detection run wrote (or an unloadable .pt)"
    )


def _add_evaluate(e: argparse.ArgumentParser) -> None:
    """`detect evaluate`'s flags: the detector or detections file, then DetectEvaluateOptions' fields."""
    from ..detection.config import DetectEvaluateOptions

    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a `resnets detect train` run folder or checkpoint")
    source.add_argument("--detections", help="a JSON list of {image, label, box: [x1, y1, x2, y2], score}")
    groups = add_config_flags(
        e, DetectEvaluateOptions, {"data": "the annotated images scored", **RUN_GROUPS}, field_default
    )
    groups["data"].add_argument(
        "--force", action="store_true", help="let --save-detections replace a file that is no detections file"
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")


def _add_predict(q: argparse.ArgumentParser) -> None:
    """`detect predict`'s flags: the detector and the images, then DetectPredictOptions' fields."""
    from ..detection.config import DetectPredictOptions

    q.add_argument("--checkpoint", required=True, help="a `resnets detect train` run folder or checkpoint")
    q.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs")
    add_config_flags(q, DetectPredictOptions, {"output": "what is reported and drawn", **RUN_GROUPS}, field_default)
    q.add_argument("--json", action="store_true", help="print the detections as one JSON list")


RUN_GROUPS = {"detector": "where and in which precision the trained detector runs"}


@command("detect", _add_detect)
def run_detect(args: argparse.Namespace) -> None:
    """Faster R-CNN C4: train, evaluate (VOC07 and COCO mAP) or predict."""
    {"train": _train, "evaluate": _evaluate, "predict": _predict}[args.action](args)


def _train(args: argparse.Namespace) -> None:
    from ..detection.config import DetectionTrainConfig, resumed_config
    from ..detection.training import train_detector
    from ..engine.run import config_path, saved_config
    from ..training.config import recipe_values

    if not args.out:
        raise UserError("detect train needs --out RUN, the folder for checkpoints and metrics")
    given = given_values(args, DetectionTrainConfig)
    values = {**(recipe_values(args.recipe) if args.recipe else {}), **given}
    model = values.pop("model", {})
    if not isinstance(model, dict):
        raise UserError(f"recipe {args.recipe}: model = {model!r} must be a table of FasterRCNNConfig fields")
    settings = {**model, **_settings(args.set)}
    run = Path(args.out)
    if args.resume:  # a recipe's values count as given: a resume refuses those that differ from the run's
        config = resumed_config(values, settings, saved_config(run), str(config_path(run)))
    else:
        source = f"recipe {args.recipe}" if args.recipe else "detect train"
        config = DetectionTrainConfig.from_values({**values, "model": settings}, source)
    row = train_detector(config, resume=args.resume, force=args.force)  # rank 0 alone returns its rows
    if row:
        print(f"iteration {row['iteration']}: loss {row['loss']:.4f}; checkpoint in {args.out}")


def _settings(items: list[str]) -> dict:
    """`--set FIELD=VALUE` items as a dict; a VALUE that is not JSON is a string (the field's type is checked later)."""
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r} is not FIELD=VALUE, e.g. --set rpn_post_nms_test=100")
        try:
            settings[key.strip()] = parse_json(value)
        except ValueError:
            settings[key.strip()] = value
    return settings


def _check_evaluate_flags(args: argparse.Namespace, o) -> None:
    """The flags' values, and --save-detections as an output, before any work: nothing a user wrote is replaced
    without --force, and no input (the checkpoint, the data) even with it."""
    from ..core.atomic import check_not_input, check_output, check_outside
    from ..detection.evaluation import is_detections_file
    from ..detection.model import detector_file
    from ..engine.run import run_inputs

    if not o.save_detections:
        return
    if not args.checkpoint:
        raise UserError("--save-detections saves the detections of a --checkpoint; a --detections file is saved")
    out, label = Path(o.save_detections), "--save-detections"
    check_not_input(out, run_inputs(detector_file(args.checkpoint)), label=label)
    check_outside(out, [Path(o.data)], label=label)
    check_output(out, force=args.force, ours=is_detections_file, label=label)


def _read_detections(path: Path, dataset) -> list[dict]:
    """The detections list in file `path`, checked against `dataset`."""
    from ..data.paths import what_is
    from ..detection.evaluation import check_detections

    if not path.is_file():  # a FIFO would block the read forever
        raise UserError(f"cannot read detections file {path}: it {what_is(path)}; pass a JSON file of detections")
    try:
        detections = parse_json(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read detections file {path} ({e})") from None
    check_detections(detections, dataset, str(path))
    return detections


def _evaluate(args: argparse.Namespace) -> None:
    from ..core.atomic import atomic_write
    from ..core.runtime import resolve_device, resolve_precision
    from ..detection.config import DetectEvaluateOptions
    from ..detection.data import load_detection_split
    from ..detection.evaluation import evaluate_detections
    from ..detection.model import load_detector
    from ..detection.predict import detections_of

    o = DetectEvaluateOptions(**given_values(args, DetectEvaluateOptions))
    if not o.data:
        raise UserError("detect evaluate needs --data DIR, the annotated data folder")
    _check_evaluate_flags(args, o)
    classes = None
    if args.checkpoint:
        model, state = load_detector(args.checkpoint)
        classes = state["classes"]
    dataset = load_detection_split(
        o.data, o.split, classes=classes, skip_bad_images=o.skip_bad_images, allow_empty=True
    )
    if o.limit:
        dataset.annotations = dataset.annotations[: o.limit]
    if args.checkpoint:
        device = resolve_device(o.device)
        precision = resolve_precision(o.precision, device)
        detections = detections_of(model.to(device), dataset, device, precision, o.skip_bad_images)
        if o.save_detections:
            with atomic_write(Path(o.save_detections)) as f:
                f.write(json.dumps(detections).encode())
    else:
        detections = _read_detections(Path(args.detections), dataset)
    if dataset.summary():
        print(f"data: {dataset.summary()}", file=sys.stderr)
    result = evaluate_detections(detections, dataset)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"map_50_voc07 {result['map_50_voc07']}  map_50 {result['map_50']}  map {result['map']}  "
        f"({result['images']} images, {result['detections']} detections)"
    )
    for name, ap in result["per_class"].items():
        print(f"  {name}: {ap}")


def _predict(args: argparse.Namespace) -> None:
    import torch

    from ..core.atomic import check_writable
    from ..core.runtime import resolve_device, resolve_precision
    from ..data.decode import BadImage, decode_image
    from ..detection.config import DetectPredictOptions
    from ..detection.draw import Drawings
    from ..detection.model import load_detector
    from ..detection.predict import detect_one
    from ..inference.inputs import collect_images

    o = DetectPredictOptions(**given_values(args, DetectPredictOptions))
    draw = Path(o.draw) if o.draw else None
    if draw is not None:
        check_writable(draw, f"--draw {draw}")  # a file, or a place that cannot be created: before any work
    model, state = load_detector(args.checkpoint)
    device = resolve_device(o.device)
    precision = resolve_precision(o.precision, device)
    model.to(device)
    files = collect_images(args.paths).files
    drawings = Drawings(draw, files) if draw is not None else None
    out, bad = [], 0
    for file in files:
        try:
            image = torch.from_numpy(decode_image(file))
        except BadImage as e:
            if o.strict:
                raise UserError(f"{e}, or drop --strict to skip bad images") from None
            bad += 1
            print(f"resnets detect: skipped {e}", file=sys.stderr)
            continue
        boxes, found = detect_one(model, state, image, str(file), device, precision, o.threshold)
        out += found
        line = f"{file}: " + (", ".join(f"{d['label']} {d['score']:.2f}" for d in found) or "nothing")
        if drawings is not None:
            captions = [f"{d['label']} {d['score']:.2f}" for d in found]
            line += f" (drawn in {drawings.write(image, boxes, captions, file)})"
        if not args.json:
            print(line)
    if bad:
        print(f"resnets detect: {len(files) - bad} images searched; skipped {bad} bad images", file=sys.stderr)
        if bad == len(files):  # nothing was searched: a failure, as in the classifier's predict
            raise UserError(f"none of the {bad} images could be decoded (each is named above); pass readable images")
    if args.json:
        print(json.dumps(out, indent=2))
