"""Training images/s of resnets against a textbook per-sample pipeline, and against the convolution limit.

Baseline: the same network fed per sample (PIL decode, pad/crop/flip per image, a DataLoader with
workers, fp32 eager). Project: `resnets.training.Trainer` (uint8 dataset in memory, batched
augmentation, bf16 autocast and channels_last where the hardware has them).

The limit, measured in the same run on the same machine: the matmul peak (GFLOP/s), and the network's own
convolutions alone (forward, and backward to input and weights, at their shapes, batch, precision and memory
format). Their sum bounds the step; the rest of the step (BN, ReLU, additions, optimizer, augmentation, format
conversions) is reported as the non-convolution share.

    python benchmarks/train_throughput.py --data DIR [--model resnet20] [--steps 20] [--rounds 5] [--compile]

Each figure is the median of `--rounds` rounds of `--steps` steps (with the range over rounds): on a shared
2-core machine single runs of 30 steps varied by 10-15%.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
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
from resnets.core.runtime import autocast, describe_device
from resnets.data.folder import scan_split
from resnets.training import loop
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


def project(args, precision: str) -> tuple[list[float], list[float]]:
    """Images/s of the project's own training step (batch assembly included), and the images/s its convolutions
    alone would allow, each over `args.rounds` rounds; prints what startup and validation add to a whole run."""
    with tempfile.TemporaryDirectory() as out:
        config = resolve_config(
            {
                "model": args.model,
                "data": args.data,
                "out": out,
                "precision": precision,
                "batch_size": args.batch_size,
                "val_split": 0,
                "compile": args.compile,
            }
        )
        start = time.perf_counter()
        trainer = Trainer(config)  # decodes the set into memory and measures the per-pixel mean
        startup = time.perf_counter() - start
        lr = config.lr

        def batches():
            i = 0
            while True:
                yield trainer.batch(i)
                i += 1

        rates = timed_steps(lambda x, y: trainer.step(x, y, lr), batches(), args)
        if args.profile:
            print_profile(trainer, args, precision)
        print_overhead_share(trainer, startup, statistics.median(rates), precision)
        return rates, conv_bound(trainer, args)


def print_overhead_share(trainer: Trainer, startup: float, images_per_sec: float, precision: str) -> None:
    """The share of a whole run (the recipe's iterations and validations) that startup and validation take."""
    config = trainer.config
    start = time.perf_counter()
    validated = trainer.validate()
    validation = time.perf_counter() - start
    validations = math.ceil(config.iters / config.eval_interval(trainer.sampler.steps_per_epoch))
    training = config.iters * config.batch_size / images_per_sec
    extra = startup + (validations * validation if validated is not None else 0.0)
    what = f"{validations} validations of {validation:.1f} s" if validated is not None else "no validation split"
    print(
        f"{precision}: startup {startup:.1f} s (decoding, mean), {what}; over {config.iters} iterations "
        f"({training / 3600:.1f} h of steps) they are {extra / (extra + training):.1%} of the run"
    )


# Where the step's time goes: each operator's own (self) time, by the phase it ran in and the kind of work it is.
PHASES = (("Optimizer.", "optimizer"), ("autograd::engine", "backward"), ("batch", "batch assembly"))
KINDS = (  # the first match counts: generated kernels are named after all the operators they fuse
    ("torch.compile kernels", ("cpp_fused", "CompiledFxGraph")),
    ("convolution", ("convolution", "mkldnn_conv")),
    ("batch norm", ("batch_norm",)),
    ("ReLU", ("relu", "threshold")),
    ("residual addition", ("aten::add",)),
    ("copies and formats", ("copy", "aten::to", "contiguous", "clone", "empty", "as_strided")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
)


def page_faults() -> int:
    """Minor page faults of this process so far (a fresh page's first write)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def phase_of(event) -> str:
    """The phase an operator ran in, from the ranges it is nested in (the forward pass if none)."""
    while event is not None:
        for prefix, phase in PHASES:
            if event.name.startswith(prefix):
                return phase
        event = event.cpu_parent
    return "forward"


def kind_of(name: str) -> str:
    return next((kind for kind, keys in KINDS if any(key in name for key in keys)), "other")


def print_profile(trainer: Trainer, args, precision: str) -> None:
    """Milliseconds per step by phase and kind of operator (self times, torch.profiler), over `args.steps` steps,
    and the page faults per step with and without the profiler (its own allocations make the step fault pages in,
    and the operator that first writes a fresh page pays for it)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    def steps() -> None:
        for i in range(args.steps):
            with record_function("batch"):
                x, y = trainer.batch(i)
            trainer.step(x, y, trainer.config.lr)

    before = page_faults()
    steps()
    unprofiled = (page_faults() - before) / args.steps
    before = page_faults()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps()
    profiled = (page_faults() - before) / args.steps
    table: dict[tuple[str, str], float] = {}
    for event in prof.events():
        phase = phase_of(event)
        key = (phase, "optimizer" if phase == "optimizer" else kind_of(event.name))
        table[key] = table.get(key, 0.0) + event.self_cpu_time_total / 1000 / args.steps
    total = sum(table.values())
    print(
        f"profile of the {precision} step ({total:.1f} ms per step under the profiler; page faults per step "
        f"{profiled:.0f} under it, {unprofiled:.0f} without), self time per step:"
    )
    for (phase, kind), ms in sorted(table.items(), key=lambda item: -item[1]):
        if ms >= 0.05:
            print(f"  {phase:15s} {kind:20s} {ms:7.2f} ms  {ms / total:5.1%}")


def conv_bound(trainer: Trainer, args) -> list[float]:
    """Images/s if a step did nothing but the network's convolutions: each conv's forward and backward (to its input
    and weights) timed alone, on inputs of its own shape, memory format and the trainer's precision."""
    inputs: list[tuple[torch.nn.Conv2d, torch.Tensor]] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, x: inputs.append((m, x[0].detach())))
        for m in trainer.model.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    x, _ = trainer.batch(0)
    with torch.no_grad(), autocast(trainer.device, trainer.precision):
        trainer.model(x)
    for hook in hooks:
        hook.remove()

    def convs() -> None:
        for conv, x in inputs:
            x = x.clone().requires_grad_()
            with autocast(trainer.device, trainer.precision):
                y = conv(x)
            y.backward(torch.ones_like(y))

    for _ in range(args.warmup):
        convs()
    rates = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.steps):
            convs()
        rates.append(args.steps * args.batch_size / (time.perf_counter() - start))
    trainer.model.zero_grad(set_to_none=True)
    return rates


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a square matmul: the most this machine computes per second in `dtype`."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    """Print baseline and project images/s, their ratio, and the step's distance from the convolution limit."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="image folder ROOT with ROOT/train/<class>/*.jpg")
    p.add_argument("--model", default="resnet20", help="network to train (default: resnet20)")
    p.add_argument("--batch-size", type=int, default=128, help="images per step (default: 128, the paper's)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round (default: 20)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; each figure is their median (default: 5)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: 5)")
    p.add_argument("--workers", type=int, default=2, help="the baseline's DataLoader workers (default: 2)")
    p.add_argument("--skip-baseline", action="store_true", help="only the project's figures")
    p.add_argument("--profile", action="store_true", help="also print where the project's step spends its time")
    p.add_argument("--compile", action="store_true", help="torch.compile the project's model (resnets train --compile)")
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc as it is (the baseline of runtime.keep_freed_memory; run both to compare)",
    )
    args = p.parse_args()
    if args.compile and args.profile:
        torch._inductor.config.cpp.enable_kernel_profile = True  # else the profile sees only the graph calls
    if args.default_malloc:
        loop.keep_freed_memory = lambda device: False
    print(
        f"{args.model}, batch {args.batch_size}, on {describe_device(torch.device('cpu'))}, "
        f"median of {args.rounds} rounds of {args.steps} steps"
    )
    print(f"matmul peak: fp32 {matmul_peak(torch.float32):.0f} GFLOP/s, bf16 {matmul_peak(torch.bfloat16):.0f} GFLOP/s")
    # The project first: the baseline's DataLoader workers linger and would slow what runs after them.
    results, bounds = {}, {}
    compiled = ", compiled" if args.compile else ""
    for name, precision in ((f"resnets fp32{compiled}", "fp32"), (f"resnets auto precision{compiled}", "auto")):
        results[name], bounds[name] = project(args, precision)
    if not args.skip_baseline:
        results["baseline (per-sample, fp32)"] = baseline(args)
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    reference = medians.get("baseline (per-sample, fp32)")
    for name, rates in results.items():
        rate = medians[name]
        ratio = f"{rate / reference:5.2f}x" if reference else ""
        spread = f"({min(rates):.0f}-{max(rates):.0f})"
        line = f"{name:28s} {rate:6.0f} images/s {spread:11s} {1000 * args.batch_size / rate:7.1f} ms/iter  {ratio}"
        if name in bounds:
            bound = statistics.median(bounds[name])
            line += f"  convolutions alone {bound:6.0f} images/s, non-convolution share {1 - rate / bound:4.0%}"
        print(line)


if __name__ == "__main__":
    main()
