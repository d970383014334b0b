"""Matching boxes to ground truth by IoU, and drawing balanced foreground / background samples."""

from __future__ import annotations

import torch

from .boxes import box_iou

IGNORE, BACKGROUND = -1, -2  # match results besides a ground-truth index


def match(
    gt: torch.Tensor, boxes: torch.Tensor, fg_iou: float, bg_high: float, bg_low: float = 0.0, best_per_gt: bool = False
) -> torch.Tensor:
    """For each of `boxes` (N, 4): the index of its best ground-truth box if IoU >= fg_iou, BACKGROUND if its best
    IoU is in [bg_low, bg_high), else IGNORE. `best_per_gt` also makes every box that is some ground-truth box's
    best match (ties included) foreground, as the RPN does (Faster R-CNN Sec. 3.1.2, condition (i))."""
    if len(gt) == 0:
        return torch.full((len(boxes),), BACKGROUND, dtype=torch.long, device=boxes.device)
    iou = box_iou(gt, boxes)  # (G, N)
    best, index = iou.max(0)
    result = torch.full_like(index, IGNORE)
    result[(best >= bg_low) & (best < bg_high)] = BACKGROUND
    result[best >= fg_iou] = index[best >= fg_iou]
    if best_per_gt:
        per_gt = iou.max(1, keepdim=True).values
        g, n = torch.nonzero((iou == per_gt) & (per_gt > 0), as_tuple=True)
        result[n] = index[n]  # the box's own best ground truth, as py-faster-rcnn's argmax
    return result


def sample(
    matches: torch.Tensor, batch_size: int, positive_fraction: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random foreground and background indices: up to batch_size * positive_fraction foreground, background filling
    the rest of batch_size (fewer when there are not enough). Draws on the CPU from `generator` (default: torch's)."""
    fg = torch.nonzero(matches >= 0).flatten()
    bg = torch.nonzero(matches == BACKGROUND).flatten()
    num_fg = min(len(fg), int(batch_size * positive_fraction))
    num_bg = min(len(bg), batch_size - num_fg)
    fg = fg[torch.randperm(len(fg), generator=generator)[:num_fg].to(fg.device)]
    bg = bg[torch.randperm(len(bg), generator=generator)[:num_bg].to(bg.device)]
    return fg, bg
