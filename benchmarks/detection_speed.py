"""Faster R-CNN C4 speed (Sec. 4.3): seconds per training iteration and per test image, against the classifier.

    python benchmarks/detection_speed.py --data VOC_DIR [--backbones resnet18,resnet50,resnet101] [--iters 5]

Training is DetectionTrainer's own step (one image per step, as py-faster-rcnn; the paper's fine-tuning setting:
frozen BN, conv1 and conv2_x fixed) at the default size, shorter side 600 and longer side at most 1000, in the
precision `--precision` resolves to. Testing is `detect evaluate`'s pass (`FasterRCNN.detect`, 300 proposals),
in its default fp32 and in that precision. The baseline, measured in the same run on the same resized images, is the backbone classifier's
forward pass in fp32: the ratio says how many classifications of the whole image one detection costs. Each figure
is the median over the images of `--iters` steps after one warm-up step; the range is printed next to it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from resnets.data.decode import decode_image
from resnets.detection.training import DetectionTrainConfig, DetectionTrainer
from resnets.detection.transforms import resize_image, resize_scale
from resnets.models import create_model
from resnets.runtime import describe_device, resolve_precision

PAPER_FINE_TUNING = {"frozen_bn": True, "freeze_at": 2}  # BN as a fixed affine layer; conv1, conv2_x fixed


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def summary(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.2f} s ({min(seconds):.2f}-{max(seconds):.2f})"


def measure(backbone: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Training-step, test (fp32 and the training precision) and classifier seconds of `backbone`, per image."""
    with tempfile.TemporaryDirectory() as out:
        config = DetectionTrainConfig.from_values(
            dict(
                data=args.data,
                split=args.split,
                out=out,
                backbone=backbone,
                iters=args.iters + 1,
                precision=args.precision,
                model=PAPER_FINE_TUNING,
                skip_bad_images=True,
            ),
            "benchmark",
        )
        trainer = DetectionTrainer(config)
        trainer.step(0)  # warm-up: oneDNN picks its kernels for the shapes
        train = [timed(trainer.step, i) for i in range(1, args.iters + 1)]
        model, data = trainer.model, trainer.data
    model.eval()
    classifier = create_model(backbone).eval()
    images = [torch.from_numpy(decode_image(a.file)) for a in data.annotations[: args.iters + 1]]
    seconds = {"train": train, "test": [], "test_fast": [], "classify": []}
    with torch.no_grad():
        for k, image in enumerate(images):
            scale = resize_scale(image.shape[1], image.shape[2], config.min_size, config.max_size)
            batch, _ = model.normalize([resize_image(image, scale)])
            times = {
                "test": timed(model.detect, [image]),
                "test_fast": timed(lambda: model.detect([image], precision=trainer.precision)),
                "classify": timed(classifier, batch),
            }
            if k:  # the first image warms up
                for key, value in times.items():
                    seconds[key].append(value)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a VOC, labelImg or COCO folder (e.g. voc-raccoon)")
    parser.add_argument("--split", default="train", help="its split whose images are timed")
    parser.add_argument("--backbones", default="resnet18,resnet50,resnet101", help="comma-separated zoo names")
    parser.add_argument("--iters", type=int, default=5, help="timed training steps and test images per backbone")
    parser.add_argument("--precision", default="auto", help="training autocast: auto, fp32 or bf16")
    args = parser.parse_args()
    print(f"{describe_device(torch.device('cpu'))}; shorter side 600, longer at most 1000; median (range)")
    print("| backbone | train s/iter | test s/image | classifier s/image (baseline) | test / classifier |")
    print("|---|---|---|---|---|")
    for backbone in args.backbones.split(","):
        train, test, classify = measure(backbone, args)
        ratio = statistics.median(test) / statistics.median(classify)
        print(
            f"| {backbone} C4 | {summary(train)} | {summary(test)} | {summary(classify)} | {ratio:.1f}x |", flush=True
        )


if __name__ == "__main__":
    main()
