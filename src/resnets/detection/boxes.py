"""Box arithmetic on (x1, y1, x2, y2) tensors: areas, IoU, clipping, and the R-CNN box coder (Girshick 2015)."""

from __future__ import annotations

import math

import torch

# exp() of a predicted log-scale is capped here, as in Detectron2: a wild early prediction cannot overflow.
MAX_LOG_SCALE = math.log(1000.0 / 16)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of (N, 4) boxes, no +1 (continuous coordinates, as torchvision)."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The (N, M) IoU matrix of boxes `a` (N, 4) and `b` (M, 4); 0 where both boxes are empty."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`boxes` clipped to an image of `height` x `width` pixels."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], -1)


class BoxCoder:
    """Encodes a box relative to a reference box as (dx, dy, dw, dh), scaled by `weights` (Sec. 3.1.2 of
    Faster R-CNN; the head's weights (10, 10, 5, 5) are py-faster-rcnn's BBOX_NORMALIZE_STDS inverted)."""

    def __init__(self, weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)):  # four: (wx, wy, ww, wh)
        self.weights = weights

    def encode(self, boxes: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Regression targets that turn `reference` (N, 4) into `boxes` (N, 4)."""
        wx, wy, ww, wh = self.weights
        rw, rh = reference[:, 2] - reference[:, 0], reference[:, 3] - reference[:, 1]
        rx, ry = reference[:, 0] + 0.5 * rw, reference[:, 1] + 0.5 * rh
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        bx, by = boxes[:, 0] + 0.5 * bw, boxes[:, 1] + 0.5 * bh
        return torch.stack(
            [wx * (bx - rx) / rw, wy * (by - ry) / rh, ww * torch.log(bw / rw), wh * torch.log(bh / rh)], 1
        )

    def decode(self, deltas: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """The boxes that `deltas` (N, 4k) make of `reference` (N, 4): (N, 4k), one box per 4 deltas."""
        wx, wy, ww, wh = self.weights
        reference = reference.to(deltas.dtype)
        rw, rh = reference[:, 2:3] - reference[:, 0:1], reference[:, 3:4] - reference[:, 1:2]
        rx, ry = reference[:, 0:1] + 0.5 * rw, reference[:, 1:2] + 0.5 * rh
        dx, dy = deltas[:, 0::4] / wx, deltas[:, 1::4] / wy
        dw = (deltas[:, 2::4] / ww).clamp(max=MAX_LOG_SCALE)
        dh = (deltas[:, 3::4] / wh).clamp(max=MAX_LOG_SCALE)
        cx, cy = dx * rw + rx, dy * rh + ry
        w, h = torch.exp(dw) * rw, torch.exp(dh) * rh
        out = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
        return out.reshape(deltas.shape)
