"""Faster R-CNN C4 speed (Sec. 4.3): seconds per training iteration and per test image, against the classifier.

    python benchmarks/detection_speed.py --data VOC_DIR [--backbones resnet18,resnet50,resnet101] [--iters 5]

Training is DetectionTrainer's own step (one image per step, as py-faster-rcnn; the paper's fine-tuning setting:
frozen BN, conv1 and conv2_x fixed) at the default size, shorter side 600 and longer side at most 1000, in the
precision `--precision` resolves to. Testing is `detect evaluate`'s pass (`FasterRCNN.detect`, 300 proposals)
in its default fp32 and in that precision. The baseline, measured in the same run on the same resized images, is
the backbone classifier's forward pass in fp32: the ratio says how many classifications of the whole image one
detection costs. Each figure is the median over `--iters` images after one warm-up; the range is next to it.
"""

from __future__ import annotations

import argparse
import functools
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
                "test_fast": timed(functools.partial(model.detect, precision=trainer.precision), [image]),
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
    fast = resolve_precision(args.precision, torch.device("cpu"))
    print(
        f"| backbone | train s/iter ({fast}) | test s/image (fp32) | test s/image ({fast}) "
        "| classifier s/image (fp32, baseline) | fp32 test / classifier |"
    )
    print("|---|---|---|---|---|---|")
    for backbone in args.backbones.split(","):
        s = measure(backbone, args)
        ratio = statistics.median(s["test"]) / statistics.median(s["classify"])
        cells = " | ".join(summary(s[k]) for k in ("train", "test", "test_fast", "classify"))
        print(f"| {backbone} C4 | {cells} | {ratio:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
