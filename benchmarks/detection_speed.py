"""Faster R-CNN C4 speed (Sec. 4.3): seconds per training iteration and per test image, against the classifier.

    python benchmarks/detection_speed.py --data VOC_DIR [--backbones resnet18,resnet50,resnet101] [--iters 5]

Training is DetectionTrainer's own step (one image per step, as py-faster-rcnn; the paper's fine-tuning setting:
frozen BN, conv1 and conv2_x fixed) at the default size, shorter side 600 and longer side at most 1000, in the
precision `--precision` resolves to. Testing is `detect evaluate`'s pass (`FasterRCNN.detect`, 300 proposals)
in its default fp32 and in that precision. The baseline, measured in the same run on the same resized images, is
the backbone classifier's forward pass in fp32: the ratio says how many classifications of the whole image one
detection costs. Each figure is the median over `--iters` images after one warm-up; the range is next to it.

The backbones have random weights, with their BN statistics measured on the timed images first: a random trunk
whose frozen BN keeps the initial statistics (mean 0, variance 1) grows its features block by block (ResNet-101's
reach 1e5 on a 600 px image), its RPN's box deltas then throw the proposals off the image, and the RoI head (whose
cost scales with the RoIs) times anything from 300 RoIs to none. Measured statistics give the feature scale of a
trained backbone; the RoI counts timed are printed next to the times.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import torch

from resnets.core.runtime import describe_device, resolve_precision
from resnets.data.decode import decode_image
from resnets.detection.config import DetectionTrainConfig
from resnets.detection.data import load_detection_split
from resnets.detection.training import DetectionTrainer
from resnets.detection.transforms import resize_image, resize_scale
from resnets.models import create_model
from resnets.weights.files import IMAGENET_MEAN, IMAGENET_STD

PAPER_FINE_TUNING = {"frozen_bn": True, "freeze_at": 2}  # BN as a fixed affine layer; conv1, conv2_x fixed


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def summary(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.2f} s ({min(seconds):.2f}-{max(seconds):.2f})"


def calibrated_backbone(backbone: str, images: list[torch.Tensor], config: DetectionTrainConfig, out: Path) -> Path:
    """A random `backbone` whose BN statistics are those of `images` at the detector's size, saved in `out`."""
    torch.manual_seed(0)
    model = create_model(backbone)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average over the images
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    with torch.no_grad():
        for image in images:
            scale = resize_scale(image.shape[1], image.shape[2], config.min_size, config.max_size)
            model((resize_image(image, scale) / 255 - mean).div(std)[None])
    file = out / f"{backbone}-calibrated.pth"
    torch.save(model.state_dict(), file)
    return file


def counting_rois(heads) -> list[int]:
    """Record the RoIs of every pass of `heads.predict_deltas` (the conv5_x head) into the returned list."""
    counts, predict = [], heads.predict_deltas

    def counted(features, proposals):
        counts.append(sum(len(p) for p in proposals))
        return predict(features, proposals)

    heads.predict_deltas = counted
    return counts


def measure(backbone: str, args: argparse.Namespace) -> dict[str, list]:
    """Training-step, test (fp32 and the training precision) and classifier seconds of `backbone`, per image, and
    the RoIs of every pass (training's first)."""
    data = load_detection_split(args.data, args.split, skip_bad_images=True)
    images = [torch.from_numpy(decode_image(a.file)) for a in data.annotations[: args.iters + 1]]
    with tempfile.TemporaryDirectory() as out:
        sizes = DetectionTrainConfig()  # the default shorter and longer sides
        config = DetectionTrainConfig.from_values(
            dict(
                data=args.data,
                split=args.split,
                out=f"{out}/run",
                backbone=backbone,
                backbone_weights=str(calibrated_backbone(backbone, images, sizes, Path(out))),
                iters=args.iters + 1,
                precision=args.precision,
                model=PAPER_FINE_TUNING,
                skip_bad_images=True,
            ),
            "benchmark",
        )
        trainer = DetectionTrainer(config)
        model = trainer.model
        rois = counting_rois(model.roi_heads)
        trainer.step(0)  # warm-up: oneDNN picks its kernels for the shapes
        train = [timed(trainer.step, i) for i in range(1, args.iters + 1)]
    model.eval()
    classifier = create_model(backbone).eval()
    seconds = {"train": train, "test": [], "test_fast": [], "classify": [], "rois": rois}
    with torch.no_grad():
        for k, image in enumerate(images):
            scale = resize_scale(image.shape[1], image.shape[2], config.min_size, config.max_size)
            batch, _ = model.normalize([resize_image(image, scale)])
            times = {
                "test": timed(model.detect, [image]),
                "test_fast": timed(functools.partial(model.detect, precision=trainer.precision), [image]),
                "classify": timed(classifier, batch),
            }
            if k:  # the first image warms up
                for key, value in times.items():
                    seconds[key].append(value)
    return seconds


def count_range(counts: list[int]) -> str:
    return f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a VOC, labelImg or COCO folder (e.g. voc-raccoon)")
    parser.add_argument("--split", default="train", help="its split whose images are timed")
    parser.add_argument("--backbones", default="resnet18,resnet50,resnet101", help="comma-separated zoo names")
    parser.add_argument("--iters", type=int, default=5, help="timed training steps and test images per backbone")
    parser.add_argument("--precision", default="auto", help="training autocast: auto, fp32 or bf16")
    args = parser.parse_args()
    print(f"{describe_device(torch.device('cpu'))}; shorter side 600, longer at most 1000; median (range)")
    fast = resolve_precision(args.precision, torch.device("cpu"))
    print(
        f"| backbone | train s/iter ({fast}) | test s/image (fp32) | test s/image ({fast}) "
        "| classifier s/image (fp32, baseline) | fp32 test / classifier | RoIs per image (train; test) |"
    )
    print("|---|---|---|---|---|---|---|")
    for backbone in args.backbones.split(","):
        s = measure(backbone, args)
        ratio = statistics.median(s["test"]) / statistics.median(s["classify"])
        cells = " | ".join(summary(s[k]) for k in ("train", "test", "test_fast", "classify"))
        steps = args.iters + 1
        rois = f"{count_range(s['rois'][:steps])}; {count_range(s['rois'][steps:])}"
        print(f"| {backbone} C4 | {cells} | {ratio:.1f}x | {rois} |", flush=True)


if __name__ == "__main__":
    main()
