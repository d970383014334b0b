"""The Region Proposal Network (Faster R-CNN Sec. 3.1): objectness and box deltas for every anchor, proposals."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .anchors import cell_anchors, grid_anchors
from .boxes import BoxCoder, clip_boxes
from .config import FasterRCNNConfig
from .nms import nms
from .sampling import IGNORE, match, sample


class RPN(nn.Module):
    """A 3x3 conv and ReLU on the stride-16 map, then per anchor one objectness logit and four box deltas."""

    cell: torch.Tensor  # the anchors of one position (A, 4), a buffer

    def __init__(self, config: FasterRCNNConfig, in_channels: int, stride: int):
        super().__init__()
        self.config = config
        self.stride = stride
        channels = config.rpn_channels or in_channels
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, config.num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * config.num_anchors, 1)
        for layer in (self.conv, self.objectness, self.deltas):  # py-faster-rcnn: gaussian, std 0.01, zero bias
            nn.init.normal_(layer.weight, std=0.01)
            assert layer.bias is not None  # nn.Conv2d's default bias=True
            nn.init.zeros_(layer.bias)
        self.register_buffer("cell", cell_anchors(config.anchor_sizes, config.anchor_ratios), persistent=False)
        self.coder = BoxCoder(config.rpn_box_weights)

    def forward(
        self,
        features: torch.Tensor,
        sizes: list[tuple[int, int]],
        targets: list[dict] | None = None,
        generators: list[torch.Generator] | None = None,
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Proposals (one (P, 4) tensor per image, detached) and, given targets, the RPN's two losses (anchors
        sampled with each image's generator, default torch's)."""
        n, _, h, w = features.shape
        x = F.relu(self.conv(features))
        a = self.config.num_anchors
        # Position-major (y, x, anchor), as grid_anchors orders the anchors.
        logits = self.objectness(x).permute(0, 2, 3, 1).reshape(n, -1).float()
        deltas = self.deltas(x).view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4).float()
        anchors = grid_anchors(self.cell, h, w, self.stride)
        proposals = [self._proposals(anchors, logits[i].detach(), deltas[i].detach(), sizes[i]) for i in range(n)]
        losses = {} if targets is None else self._losses(anchors, logits, deltas, sizes, targets, generators)
        return proposals, losses

    def _proposals(
        self, anchors: torch.Tensor, logits: torch.Tensor, deltas: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        c = self.config
        train = (c.rpn_pre_nms_train, c.rpn_post_nms_train)
        pre, post = train if self.training else (c.rpn_pre_nms_test, c.rpn_post_nms_test)
        top = logits.topk(min(pre, len(logits))).indices
        boxes = clip_boxes(self.coder.decode(deltas[top], anchors[top]), *size)
        wide = (boxes[:, 2] - boxes[:, 0] >= c.rpn_min_size) & (boxes[:, 3] - boxes[:, 1] >= c.rpn_min_size)
        boxes, scores = boxes[wide], logits[top][wide]
        return boxes[nms(boxes, scores, c.rpn_nms, max_kept=post)]  # NMS stops at the post-NMS count

    def _losses(self, anchors, logits, deltas, sizes, targets, generators) -> dict[str, torch.Tensor]:
        """Each image's losses are means over its own sampled anchors, the batch's the mean over images: every image
        weighs the same, whichever process of a data-parallel run holds it."""
        c = self.config
        cls_terms, box_terms = [], []
        zero = (logits.sum() + deltas.sum()) * 0  # keeps both layers in the graph when no anchor is foreground
        for i, (size, target) in enumerate(zip(sizes, targets)):
            gt = target["boxes"]
            matches = match(gt, anchors, c.rpn_fg_iou, c.rpn_bg_iou, best_per_gt=True)
            if c.rpn_straddle is not None:
                h, w = size
                s = c.rpn_straddle
                inside = (anchors[:, 0] >= -s) & (anchors[:, 1] >= -s) & (anchors[:, 2] <= w + s)
                inside &= anchors[:, 3] <= h + s
                matches = torch.where(inside, matches, torch.full_like(matches, IGNORE))
            fg, bg = sample(matches, c.rpn_batch_size, c.rpn_positive_fraction, generators[i] if generators else None)
            chosen = torch.cat([fg, bg])
            labels = torch.cat([torch.ones(len(fg)), torch.zeros(len(bg))]).to(logits.device)
            sampled = max(len(chosen), 1)
            cls_terms.append(F.binary_cross_entropy_with_logits(logits[i, chosen], labels, reduction="sum") / sampled)
            box = zero
            if len(fg):
                target_deltas = self.coder.encode(gt[matches[fg]], anchors[fg])
                box = F.smooth_l1_loss(deltas[i, fg], target_deltas, beta=c.rpn_smooth_l1_beta, reduction="sum")
            box_terms.append(box / sampled)
        return {"rpn_cls": sum(cls_terms, zero) / len(targets), "rpn_box": sum(box_terms, zero) / len(targets)}
