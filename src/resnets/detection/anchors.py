"""Anchors (Faster R-CNN Sec. 3.1.1): every scale x ratio box centred on every cell of the stride-16 map."""

from __future__ import annotations

import math

import torch


def cell_anchors(sizes: tuple[float, ...], ratios: tuple[float, ...]) -> torch.Tensor:
    """(A, 4) boxes centred at 0: for each ratio (h / w) and size, area size^2; ratio-major as py-faster-rcnn."""
    boxes = []
    for ratio in ratios:
        for size in sizes:
            w, h = size / math.sqrt(ratio), size * math.sqrt(ratio)
            boxes.append([-w / 2, -h / 2, w / 2, h / 2])
    return torch.tensor(boxes, dtype=torch.float32)


def grid_anchors(cell: torch.Tensor, height: int, width: int, stride: int) -> torch.Tensor:
    """(H * W * A, 4) anchors of an H x W map, position-major: anchor a of cell (y, x) is row (y * W + x) * A + a.

    Each cell's anchors are centred on the cell's centre, ((x + 0.5) * stride, (y + 0.5) * stride) input pixels.
    """
    ys = (torch.arange(height, dtype=torch.float32, device=cell.device) + 0.5) * stride
    xs = (torch.arange(width, dtype=torch.float32, device=cell.device) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], -1).reshape(-1, 1, 4)
    return (centres + cell[None]).reshape(-1, 4)
