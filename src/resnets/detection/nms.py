"""Greedy non-maximum suppression in pure PyTorch, with torchvision's signatures and semantics.

Exact greedy NMS (not "fast NMS"): a box is dropped only by a box that was itself kept. The sorted boxes are
decided in blocks of BLOCK, in score order. A block's boxes are first checked against the boxes kept so far, CHUNK
of them at a time in score order, and each chunk only sees the boxes that the chunks before it spared (the best
boxes suppress most, so the work shrinks fast). The survivors then decide among themselves: the greedy decisions
are the unique solution of a triangular system, found by fixed-point iteration on a BLOCK x BLOCK IoU matrix.
Python iterates about N / BLOCK times, memory is O(BLOCK * CHUNK), never N x N, and boxes after the block that
fills `max_kept` are never looked at.
"""

from __future__ import annotations

import torch

BLOCK = 256  # boxes decided per step: 10k boxes take 40 steps
CHUNK = 512  # kept boxes per IoU matrix: 256 x 512 floats (512 KB) stay in the L2 cache, 256 x 5000 would not


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, *, max_kept: int | None = None
) -> torch.Tensor:
    """Indices of the boxes (N, 4) kept by greedy NMS, in decreasing score order (ties: lower index first).

    A box is suppressed by a kept, higher-ranked box whose IoU with it is greater than `iou_threshold`.
    `max_kept` (not in torchvision) stops once that many are kept: the first `max_kept` of the full result.
    """
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms needs boxes (N, 4) and scores (N,); got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    if max_kept is not None and max_kept < 0:
        raise ValueError(f"max_kept={max_kept} must be None or >= 0")
    order = torch.sort(scores, descending=True, stable=True).indices
    ranked = boxes[order]
    areas = (ranked[:, 2] - ranked[:, 0]).clamp(min=0) * (ranked[:, 3] - ranked[:, 1]).clamp(min=0)
    limit = len(ranked) if max_kept is None else max_kept
    kept = torch.empty(0, dtype=torch.long, device=boxes.device)  # positions in `ranked`
    kept_boxes, kept_areas = ranked[:0], areas[:0]
    for start in range(0, len(ranked), BLOCK):
        if len(kept) >= limit:
            break
        spared = torch.arange(start, min(start + BLOCK, len(ranked)), device=boxes.device)
        for first in range(0, len(kept), CHUNK):
            if not len(spared):
                break
            chunk = slice(first, first + CHUNK)
            hit = _overlaps(ranked[spared], areas[spared], kept_boxes[chunk], kept_areas[chunk], iou_threshold)
            spared = spared[~hit.any(1)]
        block, block_areas = ranked[spared], areas[spared]
        # earlier[i, j]: box j comes before box i and overlaps it.
        earlier = torch.tril(_overlaps(block, block_areas, block, block_areas, iou_threshold), -1)
        decided = torch.ones(len(spared), dtype=torch.bool, device=boxes.device)
        while True:  # at most BLOCK rounds; each settles at least the next undecided box
            new = ~(earlier & decided[None, :]).any(1)
            if torch.equal(new, decided):
                break
            decided = new
        kept = torch.cat([kept, spared[decided]])
        kept_boxes, kept_areas = torch.cat([kept_boxes, block[decided]]), torch.cat([kept_areas, block_areas[decided]])
    return order[kept[:limit]]


def _overlaps(
    a: torch.Tensor, area_a: torch.Tensor, b: torch.Tensor, area_b: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """(len(a), len(b)) booleans: IoU > iou_threshold, as box_iou but with in-place steps (the hot loop)."""
    ax1, ay1, ax2, ay2 = (v[:, None] for v in a.unbind(1))
    bx1, by1, bx2, by2 = (v[None, :] for v in b.unbind(1))
    inter = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp_(min=0)
    inter *= (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp_(min=0)
    union = (area_a[:, None] + area_b[None, :]).sub_(inter)
    # IoU as torchvision computes it (inter / union); two empty boxes have 0 / tiny = 0.
    return inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny)) > iou_threshold


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float, *, max_kept: int | None = None
) -> torch.Tensor:
    """NMS within each category `idxs` (N,) independently; kept indices in decreasing score order (`max_kept` as
    in nms: the first that many)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    # Shifting each category's boxes by its own offset makes boxes of different categories disjoint.
    span = boxes.max() - torch.clamp(boxes.min(), max=0) + 1
    shifted = boxes + (idxs.to(boxes.dtype) * span)[:, None]
    return nms(shifted, scores, iou_threshold, max_kept=max_kept)
