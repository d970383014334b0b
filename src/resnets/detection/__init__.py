"""Faster R-CNN on a ResNet C4 trunk (Sec. 4.3), in pure PyTorch: ops, model, data, evaluation."""

from .boxes import BoxCoder, box_iou
from .config import FasterRCNNConfig
from .frozen_bn import FrozenBatchNorm2d
from .model import FasterRCNN, faster_rcnn
from .nms import batched_nms, nms
from .roi import roi_align, roi_pool

__all__ = [
    "BoxCoder",
    "FasterRCNN",
    "FasterRCNNConfig",
    "FrozenBatchNorm2d",
    "batched_nms",
    "box_iou",
    "faster_rcnn",
    "nms",
    "roi_align",
    "roi_pool",
]
