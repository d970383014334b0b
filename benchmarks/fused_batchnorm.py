"""BN + ReLU (+ the residual addition) in training mode, forward and backward: ATen eager against torch.compile.

The lever of fusing a block's elementwise work with inductor while oneDNN keeps the convolutions: each variant runs
at ResNet-20's three activation shapes (batch 128, channels_last) in the given precision, and prints its time and
its ratio to eager in the same run. `compiled` is torch.compile of the eager function (inductor lowers BN's batch
statistics to a Welford reduction); `compiled two-pass` computes them as a mean, then a mean of squared deviations.

    python benchmarks/fused_batchnorm.py [--precision bf16|fp32] [--rounds 5] [--iters 10]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from resnets.runtime import describe_device

SHAPES = ((16, 32), (32, 16), (64, 8))  # ResNet-20's (channels, map size) in conv2_x, conv3_x, conv4_x
EPS, MOMENTUM = 1e-5, 0.1


def eager(x, shortcut, weight, bias, mean, var):
    y = F.batch_norm(x, mean, var, weight, bias, True, MOMENTUM, EPS)
    return F.relu(y if shortcut is None else y + shortcut)


def two_pass(x, shortcut, weight, bias, mean, var):
    """Training-mode BN written out: batch mean, then the mean of squared deviations; running statistics updated."""
    xf = x.float()
    mu = xf.mean((0, 2, 3), keepdim=True)
    sigma2 = (xf - mu).square().mean((0, 2, 3), keepdim=True)
    n = x.numel() // x.shape[1]
    with torch.no_grad():
        mean.lerp_(mu.flatten(), MOMENTUM)
        var.lerp_(sigma2.flatten() * n / (n - 1), MOMENTUM)
    y = ((xf - mu) * torch.rsqrt(sigma2 + EPS) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)).to(x.dtype)
    return F.relu(y if shortcut is None else y + shortcut)


def milliseconds(fn, args: argparse.Namespace, channels: int, size: int, dtype: torch.dtype, add: bool) -> float:
    """Median over rounds of one forward and backward of `fn` on fresh-shaped inputs, in milliseconds."""
    x = torch.randn(128, channels, size, size, dtype=dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    shortcut = torch.randn_like(x) if add else None
    weight, bias = torch.ones(channels, requires_grad=True), torch.zeros(channels, requires_grad=True)
    mean, var = torch.zeros(channels), torch.ones(channels)
    grad = torch.randn_like(x)

    def once() -> None:
        fn(x, shortcut, weight, bias, mean, var).backward(grad)

    for _ in range(3):  # the first calls compile
        once()
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.iters):
            once()
        times.append((time.perf_counter() - start) / args.iters * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"), help="activation dtype")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each figure is their median")
    parser.add_argument("--iters", type=int, default=10, help="forward and backward passes per round")
    args = parser.parse_args()
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.precision]
    variants = {
        "compiled": torch.compile(eager, dynamic=False),
        "compiled two-pass": torch.compile(two_pass, dynamic=False),
    }
    print(f"{describe_device(torch.device('cpu'))}, {args.precision}, batch 128, channels_last; forward + backward")
    print("| shape | op | eager (baseline) | " + " | ".join(variants) + " |")
    print("|---|---|---|" + "---|" * len(variants))
    for channels, size in SHAPES:
        for add in (False, True):
            base = milliseconds(eager, args, channels, size, dtype, add)
            cells = []
            for fn in variants.values():
                ms = milliseconds(fn, args, channels, size, dtype, add)
                cells.append(f"{ms:.2f} ms ({base / ms:.2f}x)")
            op = "bn+add+relu" if add else "bn+relu"
            print(f"| {channels}x{size}x{size} | {op} | {base:.2f} ms | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
