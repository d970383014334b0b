"""`resnets detect train|evaluate|predict`: Faster R-CNN C4 (Sec. 4.3) on VOC, labelImg or COCO folders."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import UserError
from .registry import command


def _add_detect(p: argparse.ArgumentParser) -> None:
    p.description = "Object detection with Faster R-CNN on a ResNet C4 trunk (Sec. 4.3 of the paper)."
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = sub.add_parser(
        "train", help="train (or resume) a detector; writes RUN/last.pt and RUN/metrics.csv; runs under torchrun too"
    )
    t.add_argument("--data", help="a PASCAL VOC folder, a labelImg folder (image + same-name .xml) or a COCO folder")
    t.add_argument("--split", help="the training split (VOC: ImageSets/Main/SPLIT.txt; default train)")
    t.add_argument("--out", required=True, help="the run folder for checkpoints, config.json and metrics.csv")
    t.add_argument("--recipe", help="a detection recipe: detection-voc-paper (the paper's) or a .toml file")
    t.add_argument("--backbone", help="the zoo's network for the trunk (default resnet101)")
    t.add_argument(
        "--backbone-weights",
        help="a `resnets train` run folder, a weights file or torchvision-v1; without: a random trunk, trained with "
        "its BN (frozen_bn=false, freeze_at=0) unless --set says otherwise",
    )
    t.add_argument("--stride-on", choices=("1x1", "3x3"), help="bottleneck conv that subsamples")
    t.add_argument("--pooler", choices=("roi_pool", "roi_align"), help="RoI pooling (the paper's) or RoIAlign")
    t.add_argument("--min-size", type=int, help="shorter side of the training images in pixels (default 600)")
    t.add_argument("--max-size", type=int, help="longer side at most (default 1000)")
    t.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None, help="random horizontal flips")
    t.add_argument("--iters", type=int, help="SGD iterations")
    t.add_argument(
        "--images-per-batch", type=int, help="images per SGD step, over all processes (default 1, as py-faster-rcnn)"
    )
    t.add_argument("--lr", type=float, help="base learning rate (default 0.001)")
    t.add_argument("--weight-decay", type=float, help="L2 weight decay (default 1e-4)")
    t.add_argument("--milestones", help="comma-separated fractions of --iters where the lr drops 10x (default 0.75)")
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any model setting, e.g. rpn_post_nms_test=100 (see resnets.detection.FasterRCNNConfig); repeatable",
    )
    t.add_argument("--skip-bad-images", action="store_true", default=None, help="skip bad images and boxes, counted")
    t.add_argument("--seed", type=int, help="seed of the image order, flips and samples (default 0)")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto)")
    t.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), help="autocast precision (default auto)")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="NHWC memory format")
    t.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (default 500)")
    t.add_argument("--log-every", type=int, help="iterations per metrics.csv row (default 10)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")

    e = sub.add_parser("evaluate", help="map_50_voc07, map_50 and map of a detector or of a detections file")
    source = e.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a `resnets detect train` run folder or checkpoint")
    source.add_argument("--detections", help="a JSON list of {image, label, box: [x1, y1, x2, y2], score}")
    e.add_argument("--data", required=True, help="the annotated data folder")
    e.add_argument("--split", default="val", help="the split to score (default val)")
    e.add_argument("--limit", type=int, help="only the first N images of the split")
    e.add_argument("--save-detections", help="with --checkpoint: also write the detections to this JSON file")
    e.add_argument(
        "--skip-bad-images", action="store_true", help="skip bad images and boxes (counted) instead of stopping"
    )
    _add_detector_flags(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")

    q = sub.add_parser("predict", help="detect objects in image files, folders or globs")
    q.add_argument("--checkpoint", required=True, help="a `resnets detect train` run folder or checkpoint")
    q.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders or globs")
    q.add_argument("--threshold", type=float, default=0.5, help="lowest score to report (default 0.5)")
    q.add_argument("--draw", metavar="OUTDIR", help="write each image with its boxes drawn as OUTDIR/<name>.png")
    _add_detector_flags(q)
    q.add_argument("--json", action="store_true", help="print the detections as one JSON list")


def _add_detector_flags(p: argparse.ArgumentParser) -> None:
    """Where and in which precision a trained detector runs (evaluate, predict)."""
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run the detector")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="autocast of the convolutions (default fp32; auto: bf16 where the hardware has it); boxes stay fp32",
    )


@command("detect", _add_detect)
def run_detect(args: argparse.Namespace) -> None:
    """Faster R-CNN C4: train, evaluate (VOC07 and COCO mAP) or predict."""
    {"train": _train, "evaluate": _evaluate, "predict": _predict}[args.action](args)


def _train(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ..detection.training import DetectionTrainConfig, DetectionTrainer
    from ..training.config import recipe_values
    from ..training.distributed import process_group

    flags = ("data", "split", "out", "backbone", "backbone_weights", "stride_on", "pooler", "min_size", "max_size")
    flags += ("flip", "iters", "images_per_batch", "lr", "weight_decay", "skip_bad_images", "seed", "device")
    flags += ("precision", "channels_last", "checkpoint_every", "log_every")
    given = {k: getattr(args, k) for k in flags if getattr(args, k) is not None}
    if args.milestones is not None:
        try:
            given["milestones"] = [float(v) for v in args.milestones.split(",") if v.strip()]
        except ValueError:
            raise UserError(f"--milestones {args.milestones!r} is not a comma-separated list such as 0.75") from None
    settings = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--set {item!r} is not FIELD=VALUE, e.g. --set rpn_post_nms_test=100")
        try:
            settings[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.strip()] = value
    saved = Path(args.out) / "config.json"
    if args.resume and saved.is_file():
        values = json.loads(saved.read_text())
        source = str(saved)
    else:
        values = recipe_values(args.recipe) if args.recipe else {}
        source = f"recipe {args.recipe}"
    values.update(given)
    values["model"] = {**values.get("model", {}), **settings}
    config = DetectionTrainConfig.from_values(values, source)
    if not config.data:
        raise UserError("detect train needs --data DIR (a VOC, labelImg or COCO folder)")
    with process_group(config.device) as group:  # under torchrun; a no-op for a single process
        row = DetectionTrainer(config, resume=args.resume, group=group).fit()
    if row and group.is_main:
        print(f"iteration {row['iteration']}: loss {row['loss']:.4f}; checkpoint in {args.out}")


def _detections_of(model, dataset, device, precision: str, progress: bool = True) -> list[dict]:
    """The detector's detections on every image of `dataset`, in the annotations' pixel convention."""
    import torch
    from tqdm import tqdm

    from ..data.decode import decode_image

    out = []
    for a in tqdm(dataset.annotations, desc="detecting", unit="img", disable=not progress, file=None):
        result = model.detect([torch.from_numpy(decode_image(a.file)).to(device)], precision=precision)[0]
        boxes = dataset.to_annotation(result["boxes"].cpu().numpy())
        for box, score, label in zip(boxes, result["scores"].tolist(), result["labels"].tolist()):
            out.append({"image": a.image_id, "label": dataset.classes[label], "box": box.tolist(), "score": score})
    return out


def _evaluate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from ..atomic import atomic_write
    from ..detection.data import load_detection_split
    from ..detection.evaluation import check_detections, evaluate_detections
    from ..detection.training import load_detector
    from ..runtime import resolve_device, resolve_precision

    classes = None
    if args.checkpoint:
        model, state = load_detector(args.checkpoint)
        classes = state["classes"]
    dataset = load_detection_split(
        args.data, args.split, classes=classes, skip_bad_images=args.skip_bad_images, allow_empty=True
    )
    if dataset.summary():
        print(f"data: {dataset.summary()}", file=sys.stderr)
    if args.limit:
        dataset.annotations = dataset.annotations[: args.limit]
    if args.checkpoint:
        device = resolve_device(args.device)
        precision = resolve_precision(args.precision, device)
        detections = _detections_of(model.to(device), dataset, device, precision)
        if args.save_detections:
            with atomic_write(Path(args.save_detections)) as f:
                f.write(json.dumps(detections).encode())
    else:
        path = Path(args.detections)
        try:
            detections = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read detections file {path} ({e})") from None
        check_detections(detections, dataset, str(path))
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
    from pathlib import Path

    import torch

    from ..data.decode import decode_image
    from ..detection.draw import draw_detections
    from ..detection.training import load_detector
    from ..inference.inputs import collect_images
    from ..runtime import resolve_device, resolve_precision

    model, state = load_detector(args.checkpoint)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    model.to(device)
    classes = state["classes"]
    # Boxes are written in the convention of the training annotations (VOC: 1-based inclusive pixels).
    offset = torch.tensor([1.0, 1.0, 0.0, 0.0]) if state["convention"] == "voc" else torch.zeros(4)
    files = collect_images(args.paths).files
    out = []
    if args.draw:
        Path(args.draw).mkdir(parents=True, exist_ok=True)
    for file in files:
        image = torch.from_numpy(decode_image(file))
        result = model.detect([image.to(device)], precision=precision)[0]
        keep = result["scores"] >= args.threshold
        boxes, scores, labels = result["boxes"][keep].cpu(), result["scores"][keep].tolist(), result["labels"][keep]
        found = [
            {"image": str(file), "label": classes[int(k)], "box": (b + offset).tolist(), "score": s}
            for b, s, k in zip(boxes, scores, labels)
        ]
        out += found
        if args.draw:
            draw_detections(
                image, boxes, [f"{d['label']} {d['score']:.2f}" for d in found], Path(args.draw) / f"{file.stem}.png"
            )
        if not args.json:
            print(f"{file}: " + (", ".join(f"{d['label']} {d['score']:.2f}" for d in found) or "nothing"))
    if args.json:
        print(json.dumps(out, indent=2))
