"""What bf16 autocast does to a training gradient, against the SGD noise measured in the same run.

For `--batches` consecutive training batches of the project's pipeline, the gradient of the loss is computed
once in fp32 and once under bf16 autocast, from the same weights. Printed, as fractions of the fp32 gradient's
norm:
- bf16 error: |g_bf16 - g_fp32|, the price of bf16 on one batch;
- SGD noise: |g_i - g_j| between two batches in fp32, the noise every SGD step already carries (the baseline).
A bf16 error well below the SGD noise, and random rather than biased (averaged over k batches it shrinks
like 1/sqrt(k) and is not aligned with the gradient), is extra noise of a smaller batch, not a systematic
change of the training; its component along the gradient is printed as the learning-rate change it amounts to.

    python benchmarks/bf16_gradient_error.py --data DIR [--model resnet56] [--checkpoint RUN_OR_FILE]

Without `--checkpoint` the weights are the model's initialisation (seed 0), where deep nets are most sensitive.
"""

from __future__ import annotations

import argparse
import math
import tempfile

import torch
import torch.nn.functional as F

from resnets.training.config import resolve_config
from resnets.training.loop import Trainer
from resnets.weights.files import load_trained


def gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> torch.Tensor:
    """The flattened gradient of the cross-entropy on (x, y); BN statistics are restored afterwards."""
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device.type  # the CPU, or a GPU where the Trainer found one
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def main() -> None:
    """Print the bf16 gradient error and the batch-to-batch SGD noise, both relative to the fp32 gradient."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="image folder ROOT with ROOT/train/<class>/*.jpg")
    p.add_argument("--model", default="resnet56", help="the network (a checkpoint brings its own)")
    p.add_argument("--checkpoint", help="run folder or checkpoint whose weights to use (default: initialisation)")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--first-batch", type=int, default=0, help="the training iteration whose batch comes first")
    args = p.parse_args()
    if args.batches < 2:
        p.error(f"--batches {args.batches}: the SGD noise compares batches, so give at least 2")
    trained = load_trained(args.checkpoint) if args.checkpoint else None
    # A checkpoint brings its model and its run's seed and split: the same pixel mean and batches as that run.
    same_run = ("seed", "val_split", "split_seed")
    run = {"model": trained.name, **{k: trained.train_config[k] for k in same_run}} if trained else {}
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            resolve_config({"model": args.model, "data": args.data, "out": out, "precision": "fp32", **run})
        )
        if trained:
            trainer.model.load_state_dict(trained.model.state_dict())
        model = trainer.model.train()
        exact, errors = [], []
        for i in range(args.first_batch, args.first_batch + args.batches):
            x, y = trainer.batch(i)
            exact.append(gradient(model, x, y, bf16=False))
            errors.append(gradient(model, x, y, bf16=True) - exact[-1])

    def relative(v: torch.Tensor, g: torch.Tensor) -> float:
        return (v.norm() / g.norm()).item()

    k = len(exact)
    bf16_error = sum(relative(e, g) for e, g in zip(errors, exact)) / k
    sgd_noise = sum(relative(exact[i] - exact[i + 1], exact[i]) for i in range(k - 1)) / (k - 1)
    mean_error, mean_gradient = sum(errors) / k, sum(exact) / k
    shrink = (mean_error.norm() / (sum(e.norm() for e in errors) / k)).item()
    source = args.checkpoint or "initialisation"
    print(f"{trainer.config.model} ({source}), {k} batches from iteration {args.first_batch}, relative to |g_fp32|:")
    print(f"  bf16 error  |g_bf16 - g_fp32|   {bf16_error:.3f}")
    print(f"  SGD noise   |g_i - g_i+1|       {sgd_noise:.3f}   (bf16 error / SGD noise: {bf16_error / sgd_noise:.2f})")
    print(f"  mean error over {k} batches shrinks to {shrink:.2f} of one batch's (random: {1 / math.sqrt(k):.2f})")
    # The error's component along the gradient acts like a change of the learning rate.
    along = (mean_error @ mean_gradient / (mean_gradient @ mean_gradient)).item()
    print(f"  mean error along the mean gradient {along:+.2%} of it (as if the lr changed by that much)")


if __name__ == "__main__":
    main()
