"""Top-1 and top-5 error of a classifier on a uint8 image set, the single-view test of Sec. 4.2."""

from __future__ import annotations

import torch
from torch import nn

from ..data.augment import normalize
from ..training.device import autocast


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: torch.Tensor,
    *,
    device: torch.device,
    precision: str = "fp32",
    batch_size: int = 500,
    channels_last: bool = True,
) -> dict[str, float | int]:
    """Error rates in percent over `images` (uint8 [N, 3, H, W]) and the mean cross-entropy."""
    was_training = model.training
    model.eval()
    mean = mean.to(device)
    top1 = top5 = 0
    loss = 0.0
    for start in range(0, len(images), batch_size):
        x = normalize(images[start : start + batch_size].to(device, non_blocking=True), mean)
        y = labels[start : start + batch_size].to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(x)
        logits = logits.float()
        loss += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top == y[:, None]
        top1 += int(hits[:, 0].sum())
        top5 += int(hits.any(1).sum())
    model.train(was_training)
    n = len(images)
    return {
        "top1_error": 100.0 * (1 - top1 / n),
        "top5_error": 100.0 * (1 - top5 / n),
        "loss": loss / n,
        "images": n,
    }
