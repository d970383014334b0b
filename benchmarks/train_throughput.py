"""Training images/s of resnets against a textbook per-sample pipeline, measured in the same run.

Baseline: the same network fed per sample (PIL decode, pad/crop/flip per image, a DataLoader with
workers, fp32 eager). Project: `resnets.training.Trainer` (uint8 dataset in memory, batched
augmentation, bf16 autocast and channels_last where the hardware has them).

    python benchmarks/train_throughput.py --data DIR [--model resnet20] [--steps 20] [--rounds 5] [--workers 2]

Each figure is the median of `--rounds` rounds of `--steps` steps (with the range over rounds): on a shared
2-core machine single runs of 30 steps varied by 10-15%.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from resnets import create_model
from resnets.data.folder import scan_split
from resnets.training.config import resolve_config
from resnets.training.loop import Trainer


class PerSampleCifar(Dataset):
    """The textbook dataset: open and decode one JPEG per item, augment it alone, return a float tensor."""

    def __init__(self, root: Path, mean: np.ndarray):
        scan = scan_split(root, "train")
        self.files, self.labels, self.mean = scan.files, scan.labels, mean

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        image = np.asarray(Image.open(self.files[i]).convert("RGB"), dtype=np.float32) / 255
        padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
        y, x = random.randint(0, 8), random.randint(0, 8)
        crop = padded[y : y + 32, x : x + 32]
        if random.random() < 0.5:
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)) - self.mean), self.labels[i]


def timed_steps(step, batches, args) -> list[float]:
    """Images/s of each of `args.rounds` rounds of `args.steps` training steps, after `args.warmup` untimed ones."""
    for _ in range(args.warmup):
        step(*next(batches))
    rates = []
    for _ in range(args.rounds):
        start, images = time.perf_counter(), 0
        for _ in range(args.steps):
            x, y = next(batches)
            step(x, y)
            images += len(y)
        rates.append(images / (time.perf_counter() - start))
    return rates


def baseline(args) -> list[float]:
    """Images/s of the per-sample pipeline, fp32 eager."""
    torch.manual_seed(0)
    model = create_model(args.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    mean = np.zeros((3, 32, 32), np.float32)
    loader = DataLoader(
        PerSampleCifar(Path(args.data), mean),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        drop_last=True,
        persistent_workers=args.workers > 0,
    )

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def batches():
        while True:
            yield from loader

    return timed_steps(step, batches(), args)


def project(args, precision: str) -> list[float]:
    """Images/s of the project's own training step (batch assembly included)."""
    with tempfile.TemporaryDirectory() as out:
        config = resolve_config(
            {"model": args.model, "data": args.data, "out": out, "precision": precision, "batch_size": args.batch_size}
        )
        trainer = Trainer(config)
        lr = config.lr

        def batches():
            i = 0
            while True:
                yield trainer.batch(i)
                i += 1

        return timed_steps(lambda x, y: trainer.step(x, y, lr), batches(), args)


def main() -> None:
    """Print baseline and project images/s and their ratio."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="image folder ROOT with ROOT/train/<class>/*.jpg")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-baseline", action="store_true", help="only the project's figures")
    args = p.parse_args()
    print(
        f"{args.model}, batch {args.batch_size}, {torch.get_num_threads()} threads, "
        f"median of {args.rounds} rounds of {args.steps} steps"
    )
    # The project first: the baseline's DataLoader workers linger and would slow what runs after them.
    results = {"resnets fp32": project(args, "fp32"), "resnets auto precision": project(args, "auto")}
    if not args.skip_baseline:
        results["baseline (per-sample, fp32)"] = baseline(args)
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    reference = medians.get("baseline (per-sample, fp32)")
    for name, rates in results.items():
        rate = medians[name]
        ratio = f"{rate / reference:5.2f}x" if reference else ""
        spread = f"({min(rates):.0f}-{max(rates):.0f})"
        print(f"{name:28s} {rate:6.0f} images/s {spread:11s} {1000 * args.batch_size / rate:7.1f} ms/iter  {ratio}")


if __name__ == "__main__":
    main()
