"""BN + ReLU (+ the residual addition) in training mode, forward and backward: ATen eager against ways to fuse it.

Each variant runs at ResNet-20's three activation shapes (batch 128, channels_last) in the given precision and is
printed in ms, as its ratio to eager, and in passes: multiples of one copy of the activation (a read and a write)
timed at the same shape in the same run, the unit of memory traffic. BN's forward and backward need about four
(the two-pass statistics read x twice and y is written; the gradient sums read dy and x, dx reads both and is
written); ReLU and the addition add about one each.

- compiled: torch.compile of the eager function (inductor; its ReLU saves a bool mask for the backward)
- compiled, float mask: the same with ReLU written y * (y > 0), so the saved mask has the activation's dtype
- ATen ops: an autograd.Function whose forward and backward are BN's formulas in ATen ops (sum, addcmul, ...)
- C++ kernel: BN by benchmarks/batch_norm_kernel.cpp, built here with torch.utils.cpp_extension (about 30 s);
  ReLU and the addition stay ATen's

    python benchmarks/fused_batchnorm.py [--precision bf16|fp32] [--rounds 5] [--iters 10] [--no-kernel]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from resnets.core.runtime import describe_device, keep_freed_memory

SHAPES = ((16, 32), (32, 16), (64, 8))  # ResNet-20's (channels, map size) in conv2_x, conv3_x, conv4_x
EPS, MOMENTUM = 1e-5, 0.1


def eager(x, shortcut, weight, bias, mean, var):
    y = F.batch_norm(x, mean, var, weight, bias, True, MOMENTUM, EPS)
    return F.relu(y if shortcut is None else y + shortcut)


def float_mask(x, shortcut, weight, bias, mean, var):
    """`eager` with ReLU as a product with its mask, which autograd then saves in the activation's dtype."""
    y = F.batch_norm(x, mean, var, weight, bias, True, MOMENTUM, EPS)
    y = y if shortcut is None else y + shortcut
    return y * (y > 0).to(y.dtype)


def rows(t: torch.Tensor) -> torch.Tensor:
    """A channels_last NCHW tensor as its [N*H*W, C] matrix of pixels (a view)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def unrows(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    n, _, h, w = like.shape
    return t.view(n, h, w, -1).permute(0, 3, 1, 2)


def update_running(mean, var, batch_mean, batch_var, n: int) -> None:
    with torch.no_grad():
        mean.lerp_(batch_mean, MOMENTUM)
        var.lerp_(batch_var * (n / (n - 1)), MOMENTUM)  # running variance is unbiased, as nn.BatchNorm2d's


class AtenOpsBatchNormReLU(torch.autograd.Function):
    """relu(BN(x) [+ shortcut]) from ATen ops; the backward reuses the forward's centred x and output."""

    @staticmethod
    def forward(ctx, x, shortcut, weight, bias, mean, var):
        x2 = rows(x)
        n = x2.shape[0]
        batch_mean = x2.mean(0, dtype=torch.float32)
        d = x2 - batch_mean
        batch_var = d.square().mean(0)
        invstd = torch.rsqrt(batch_var + EPS)
        update_running(mean, var, batch_mean, batch_var, n)
        y = torch.addcmul(bias, d, weight * invstd)
        if shortcut is not None:
            y += rows(shortcut)
        y = y.clamp_min_(0).to(x.dtype)
        ctx.save_for_backward(d, y, invstd, weight)
        ctx.has_shortcut = shortcut is not None
        return unrows(y, x)

    @staticmethod
    def backward(ctx, grad):
        d, y, invstd, weight = ctx.saved_tensors
        n = d.shape[0]
        g = torch.ops.aten.threshold_backward(rows(grad.contiguous(memory_format=torch.channels_last)), y, 0)
        gf = g.float()
        sum_g, sum_gd = gf.sum(0), (gf * d).sum(0)
        a = weight * invstd
        dx = torch.addcmul(-a * sum_g / n, d, -a * invstd * invstd * sum_gd / n).addcmul_(gf, a)
        dx = unrows(dx.to(g.dtype), grad)
        return dx, unrows(g, grad) if ctx.has_shortcut else None, sum_gd * invstd, sum_g, None, None


def kernel_variant(extension):
    """relu(BN(x) [+ shortcut]) with BN's forward and backward from the C++ kernel."""

    class KernelBatchNorm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, bias, mean, var):
            x2 = rows(x)
            y2, batch_mean, invstd, batch_var = extension.forward(x2, weight, bias, EPS)
            update_running(mean, var, batch_mean, batch_var, x2.shape[0])
            ctx.save_for_backward(x2, batch_mean, invstd, weight)
            return unrows(y2, x)

        @staticmethod
        def backward(ctx, grad):
            x2, batch_mean, invstd, weight = ctx.saved_tensors
            g2 = rows(grad.contiguous(memory_format=torch.channels_last))
            dx2, dw, db = extension.backward(g2, x2, batch_mean, invstd, weight)
            return unrows(dx2, grad), dw, db, None, None

    def fused(x, shortcut, weight, bias, mean, var):
        y = KernelBatchNorm.apply(x, weight, bias, mean, var)
        return F.relu(y if shortcut is None else y + shortcut)

    return fused


def build_kernel():
    """The C++ kernel as a Python module, compiled for this machine's instruction set."""
    from torch.utils.cpp_extension import load

    source = Path(__file__).with_name("batch_norm_kernel.cpp")
    return load("resnets_bench_batch_norm", [str(source)], extra_cflags=["-O3", "-march=native", "-fopenmp"])


def inputs(channels: int, size: int, dtype: torch.dtype, add: bool):
    torch.manual_seed(0)
    x = (torch.randn(128, channels, size, size) * 2 + 0.5).to(dtype).contiguous(memory_format=torch.channels_last)
    shortcut = torch.randn_like(x) if add else None
    weight = (torch.rand(channels) + 0.5).requires_grad_()
    bias = torch.randn(channels).requires_grad_()
    return x.requires_grad_(), shortcut, weight, bias, torch.zeros(channels), torch.ones(channels), torch.randn_like(x)


def mismatch(fn, channels: int, size: int, dtype: torch.dtype, add: bool) -> str | None:
    """What of `fn`'s output and gradients differs from eager's, if anything (a wrong variant is not timed)."""
    results = []
    for f in (eager, fn):
        x, shortcut, weight, bias, mean, var, grad = inputs(channels, size, dtype, add)
        y = f(x, shortcut, weight, bias, mean, var)
        y.backward(grad)
        results.append([t.float() for t in (y, x.grad, weight.grad, bias.grad, mean, var)])
    tolerance = 5e-2 if dtype == torch.bfloat16 else 1e-3  # relative norm error: rounding flips a few ReLU masks
    for what, ref, got in zip(("y", "dx", "dweight", "dbias", "running mean", "running var"), *results):
        error = ((got - ref).norm() / ref.norm()).item()
        if not error <= tolerance:
            return f"{what} differs by {error:.1e}"
    return None


def milliseconds(step, rounds: int, iters: int) -> float:
    """Median over rounds of one call of `step`, in milliseconds, after three untimed calls (the first compile)."""
    for _ in range(3):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        times.append((time.perf_counter() - start) / iters * 1000)
    return statistics.median(times)


def one_pass(channels: int, size: int, dtype: torch.dtype):
    """A copy of one activation: a read and a write of it, the unit the variants are counted in."""
    x = torch.randn(128, channels, size, size, dtype=dtype).contiguous(memory_format=torch.channels_last)
    out = torch.empty_like(x)
    return lambda: out.copy_(x)


def kernel_alone(extension, channels: int, size: int, dtype: torch.dtype):
    """One forward and one backward call of the C++ kernel on an activation's rows: its own memory traffic."""
    x = rows(torch.randn(128, channels, size, size, dtype=dtype).contiguous(memory_format=torch.channels_last))
    grad = torch.randn_like(x)
    weight, bias = torch.rand(channels) + 0.5, torch.randn(channels)

    def step() -> None:
        _, mean, invstd, _ = extension.forward(x, weight, bias, EPS)
        extension.backward(grad, x, mean, invstd, weight)

    return step


def forward_backward(fn, channels: int, size: int, dtype: torch.dtype, add: bool):
    x, shortcut, weight, bias, mean, var, grad = inputs(channels, size, dtype, add)
    return lambda: fn(x, shortcut, weight, bias, mean, var).backward(grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"), help="activation dtype")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each figure is their median")
    parser.add_argument("--iters", type=int, default=10, help="forward and backward passes per round")
    parser.add_argument("--no-kernel", action="store_true", help="skip the C++ kernel (it needs a C++ compiler)")
    args = parser.parse_args()
    keep_freed_memory(torch.device("cpu"))  # as the trainers do: fresh outputs do not fault pages in
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.precision]
    variants = {
        "compiled": torch.compile(eager, dynamic=False),
        "compiled, float mask": torch.compile(float_mask, dynamic=False),
        "ATen ops": AtenOpsBatchNormReLU.apply,
    }
    extension = None if args.no_kernel else build_kernel()
    if extension is not None:
        variants["C++ kernel"] = kernel_variant(extension)
    print(f"{describe_device(torch.device('cpu'))}, {args.precision}, batch 128, channels_last; forward + backward")
    print("| shape | op | one pass (copy) | eager (baseline) | " + " | ".join(variants) + " |")
    print("|---|---|---|---|" + "---|" * len(variants))
    alone = []
    for channels, size in SHAPES:
        copy = milliseconds(one_pass(channels, size, dtype), args.rounds, args.iters * 10)
        if extension is not None:
            ms = milliseconds(kernel_alone(extension, channels, size, dtype), args.rounds, args.iters)
            alone.append(f"{channels}x{size}x{size} {ms / copy:.1f}")
        for add in (False, True):
            base = milliseconds(forward_backward(eager, channels, size, dtype, add), args.rounds, args.iters)
            cells = []
            for fn in variants.values():
                wrong = mismatch(fn, channels, size, dtype, add)
                if wrong:
                    cells.append(f"not timed: {wrong} from eager")
                    continue
                ms = milliseconds(forward_backward(fn, channels, size, dtype, add), args.rounds, args.iters)
                cells.append(f"{ms:.2f} ms ({base / ms:.2f}x, {ms / copy:.0f} passes)")
            op = "bn+add+relu" if add else "bn+relu"
            print(
                f"| {channels}x{size}x{size} | {op} | {copy:.3f} ms | {base:.2f} ms ({base / copy:.0f} passes) | "
                + " | ".join(cells)
                + " |",
                flush=True,
            )
    if alone:
        print("C++ kernel alone (its forward and backward calls, no autograd, no ReLU), passes: " + ", ".join(alone))


if __name__ == "__main__":
    main()
