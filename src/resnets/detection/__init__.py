"""Faster R-CNN on a ResNet C4 trunk (Sec. 4.3), in pure PyTorch: ops, model, data, evaluation."""

from .nms import batched_nms, nms
from .roi import roi_align, roi_pool

__all__ = ["batched_nms", "nms", "roi_align", "roi_pool"]
