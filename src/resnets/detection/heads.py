"""The per-RoI head of the C4 design (Sec. 4.3, Detectron2's Res5ROIHeads): RoI pooling, conv5_x, average pool,
then a (K + 1)-way classifier and class-specific box deltas."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .boxes import BoxCoder, clip_boxes
from .config import FasterRCNNConfig
from .nms import batched_nms
from .roi import roi_align, roi_pool
from .sampling import match, sample


class Res5ROIHeads(nn.Module):
    """conv5_x (the backbone's last stage, its first block subsampling 14x14 to 7x7) applied to each pooled RoI."""

    def __init__(self, config: FasterRCNNConfig, res5: nn.Module, channels: int, stride: int):
        super().__init__()
        self.config = config
        self.spatial_scale = 1.0 / stride
        self.res5 = res5
        self.cls_score = nn.Linear(channels, config.num_classes + 1)  # the last class is background
        self.bbox_pred = nn.Linear(channels, 4 * config.num_classes)
        nn.init.normal_(self.cls_score.weight, std=0.01)  # py-faster-rcnn's initialisation
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)
        self.coder = BoxCoder(config.box_weights)

    def pool(self, features: torch.Tensor, proposals: list[torch.Tensor]) -> torch.Tensor:
        """Pooled RoI features (R, C, P, P) of every image's proposals, in order."""
        c = self.config
        index = torch.cat([torch.full((len(p), 1), i, dtype=p.dtype, device=p.device) for i, p in enumerate(proposals)])
        rois = torch.cat([index, torch.cat(proposals)], 1)
        if c.pooler == "roi_align":
            return roi_align(features, rois, c.pooler_resolution, self.spatial_scale, c.sampling_ratio, c.aligned)
        return roi_pool(features, rois, c.pooler_resolution, self.spatial_scale)

    def predict_deltas(self, features: torch.Tensor, proposals: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Class logits (R, K + 1) and box deltas (R, 4K) of the proposals."""
        x = self.res5(self.pool(features, proposals))
        x = x.mean((2, 3))
        return self.cls_score(x).float(), self.bbox_pred(x).float()

    def losses(
        self,
        features: torch.Tensor,
        proposals: list[torch.Tensor],
        targets: list[dict],
        generators: list[torch.Generator] | None = None,
    ) -> dict:
        """Classification and box losses on 128 sampled RoIs per image (ground-truth boxes join the proposals), drawn
        with each image's generator (default torch's); as the RPN's, means per image, then over the images."""
        c = self.config
        rois, labels, box_targets = [], [], []
        for i, (p, target) in enumerate(zip(proposals, targets)):
            gt, gt_labels = target["boxes"], target["labels"]
            p = torch.cat([p, gt])
            matches = match(gt, p, c.roi_fg_iou, c.roi_bg_iou_high, c.roi_bg_iou_low)
            fg, bg = sample(matches, c.roi_batch_size, c.roi_positive_fraction, generators[i] if generators else None)
            chosen = torch.cat([fg, bg])
            rois.append(p[chosen])
            background = torch.full((len(bg),), c.num_classes, dtype=torch.long, device=p.device)
            labels.append(torch.cat([gt_labels[matches[fg]], background]))
            box_targets.append(self.coder.encode(gt[matches[fg]], p[fg]))
        logits, deltas = self.predict_deltas(features, rois)
        cls_terms, box_terms = [], []
        for image_logits, image_deltas, image_labels, targets_fg in zip(
            logits.split([len(r) for r in rois]), deltas.split([len(r) for r in rois]), labels, box_targets
        ):
            fg = torch.nonzero(image_labels < c.num_classes).flatten()  # the foreground RoIs come first
            fg_deltas = image_deltas.view(len(image_deltas), c.num_classes, 4)[fg, image_labels[fg]]
            box = F.smooth_l1_loss(fg_deltas, targets_fg, beta=c.smooth_l1_beta, reduction="sum")
            cls_terms.append(F.cross_entropy(image_logits, image_labels))
            box_terms.append(box / max(len(image_labels), 1))
        return {"cls": sum(cls_terms) / len(rois), "box": sum(box_terms) / len(rois)}

    def detect(
        self, features: torch.Tensor, proposals: list[torch.Tensor], sizes: list[tuple[int, int]]
    ) -> list[dict[str, torch.Tensor]]:
        """Per image: boxes (D, 4), scores (D,) and class indices (D,), after per-class NMS; D <= 100."""
        c = self.config
        logits, deltas = self.predict_deltas(features, proposals)
        probs = logits.softmax(1)[:, : c.num_classes]
        boxes = self.coder.decode(deltas, torch.cat(proposals)).view(-1, c.num_classes, 4)
        results = []
        start = 0
        for p, size in zip(proposals, sizes):
            end = start + len(p)
            b = clip_boxes(boxes[start:end], *size)
            s = probs[start:end]
            roi, cls = torch.nonzero(s > c.test_score_threshold, as_tuple=True)
            b, s = b[roi, cls], s[roi, cls]
            keep = batched_nms(b, s, cls, c.test_nms, max_kept=c.detections_per_image)
            results.append({"boxes": b[keep], "scores": s[keep], "labels": cls[keep]})
            start = end
        return results
