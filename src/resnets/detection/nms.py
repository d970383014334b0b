"""Greedy non-maximum suppression in pure PyTorch, with torchvision's signatures and semantics.

Exact greedy NMS (not "fast NMS"): a box is dropped only by a box that was itself kept. The sorted boxes are
processed in blocks of BLOCK: within a block, the greedy decisions are the unique solution of a triangular system,
found by fixed-point iteration on a BLOCK x BLOCK IoU matrix; the kept boxes of the block then suppress every later
box at once. Python iterates N / BLOCK times and memory is O(BLOCK * N), never N x N.
"""

from __future__ import annotations

import torch

BLOCK = 256  # boxes decided per step: 10k boxes take 40 steps; a BLOCK x N float matrix is 10 MB at N = 10k


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes (N, 4) kept by greedy NMS, in decreasing score order (ties: lower index first).

    A box is suppressed by a kept, higher-ranked box whose IoU with it is greater than `iou_threshold`.
    """
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms needs boxes (N, 4) and scores (N,); got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    n = len(ranked)
    keep = torch.ones(n, dtype=torch.bool, device=boxes.device)
    for start in range(0, n, BLOCK):
        end = min(start + BLOCK, n)
        block = ranked[start:end]
        over = _overlaps(block, block, iou_threshold)
        # earlier[i, j]: box j comes before box i in the block and overlaps it.
        earlier = torch.tril(over, diagonal=-1)
        alive = keep[start:end]
        kept = alive.clone()
        while True:  # at most len(block) rounds; each settles at least the next undecided box
            suppressed = (earlier & kept[None, :]).any(1)
            new = alive & ~suppressed
            if torch.equal(new, kept):
                break
            kept = new
        keep[start:end] = kept
        if end < n and kept.any():
            alive_later = torch.nonzero(keep[end:]).flatten() + end  # only boxes not yet suppressed
            hit = _overlaps(block[kept], ranked[alive_later], iou_threshold).any(0)
            keep[alive_later[hit]] = False
    return order[keep]


def _overlaps(a: torch.Tensor, b: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """(len(a), len(b)) booleans: IoU > iou_threshold, as box_iou but with in-place steps (the hot loop)."""
    ax1, ay1, ax2, ay2 = (v[:, None] for v in a.unbind(1))
    bx1, by1, bx2, by2 = (v[None, :] for v in b.unbind(1))
    inter = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp_(min=0)
    inter *= (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp_(min=0)
    area_a = (ax2 - ax1).clamp(min=0) * (ay2 - ay1).clamp(min=0)
    area_b = (bx2 - bx1).clamp(min=0) * (by2 - by1).clamp(min=0)
    union = (area_a + area_b) - inter
    # IoU as torchvision computes it (inter / union); two empty boxes have 0 / tiny = 0.
    return inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny)) > iou_threshold


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """NMS within each category `idxs` (N,) independently; kept indices in decreasing score order."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    # Shifting each category's boxes by its own offset makes boxes of different categories disjoint.
    span = boxes.max() - torch.clamp(boxes.min(), max=0) + 1
    shifted = boxes + (idxs.to(boxes.dtype) * span)[:, None]
    return nms(shifted, scores, iou_threshold)
