"""Detection metrics: VOC2007 11-point AP at IoU 0.5 (Table 7), and COCO AP (Table 8) through pycocotools.

`map_50_voc07` follows py-faster-rcnn's voc_eval: per class, detections ranked by score; one is a true positive
if its best IoU (areas with the devkit's +1 pixel) with a ground-truth box of its image exceeds 0.5 and that box is
not yet taken; "difficult" boxes neither count as positives nor penalise the detections that hit them.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import UserError, parse_json
from .data import DetectionSet


def check_detections(detections: Any, dataset: DetectionSet, source: str) -> None:
    """Reject a detections list that does not fit `dataset`: wrong fields or types, scores or boxes that are not
    finite numbers, inverted boxes, unknown images or class names; each a line naming the entry."""
    if not isinstance(detections, list):
        raise UserError(f"{source} must hold a JSON list of {{image, label, box, score}} objects")
    ids = {str(a.image_id) for a in dataset.annotations}
    classes = set(dataset.classes)
    for i, d in enumerate(detections):
        flaw = detection_flaw(d)
        if flaw:
            raise UserError(f"{source}: entry {i} {flaw}")
        if str(d["image"]) not in ids:
            raise UserError(f"{source}: entry {i} names image {d['image']!r}, which is not in the split")
        if d["label"] not in classes:
            raise UserError(
                f"{source}: entry {i} has label {d['label']!r}; the classes are {', '.join(dataset.classes)}"
            )


def detection_flaw(d: Any) -> str | None:
    """What makes `d` no detection {image, label, box: [x1, y1, x2, y2], score}, or None when it is one."""
    if not (isinstance(d, dict) and {"image", "label", "box", "score"} <= set(d)):
        return "is not {image, label, box: [x1, y1, x2, y2], score}"
    if not isinstance(d["image"], (str, int)) or isinstance(d["image"], bool) or not isinstance(d["label"], str):
        return f"has image {d['image']!r} and label {d['label']!r}; the image is an id or name, the label a class name"
    if not _finite_number(d["score"]):
        return f"has score {d['score']!r}, which must be a finite number"
    box = d["box"]
    if not (isinstance(box, list) and len(box) == 4 and all(_finite_number(v) for v in box)):
        return f"has box {box!r}, which must be four finite numbers [x1, y1, x2, y2]"
    if box[2] < box[0] or box[3] < box[1]:
        return f"has box {box!r}, inverted: x2 and y2 must not be below x1 and y1"
    return None


def is_detections_file(path: Path) -> bool:
    """Whether `path` is a regular file holding a detections list (as --save-detections writes): one of ours."""
    try:
        detections = parse_json(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return False
    return isinstance(detections, list) and all(detection_flaw(d) is None for d in detections)


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """The VOC2007 11-point interpolated AP: the mean over t = 0, 0.1, ..., 1 of the best precision at recall >= t."""
    return float(
        np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.arange(0, 1.1, 0.1)])
    )


def voc07_class_ap(detections: list[dict], dataset: DetectionSet, label: int) -> float | None:
    """VOC07 AP of class `label` (None when the split has no non-difficult box of it)."""
    gt = {}
    positives = 0
    for a in dataset.annotations:
        mine = a.labels == label
        gt[str(a.image_id)] = (a.boxes[mine], a.difficult[mine], np.zeros(int(mine.sum()), bool))
        positives += int((~a.difficult[mine]).sum())
    if positives == 0:
        return None
    name = dataset.classes[label]
    mine = sorted((d for d in detections if d["label"] == name), key=lambda d: -float(d["score"]))
    tp, fp = np.zeros(len(mine)), np.zeros(len(mine))
    for i, d in enumerate(mine):
        boxes, difficult, taken = gt[str(d["image"])]
        best, j = -math.inf, -1
        if len(boxes):
            b = np.asarray(d["box"], np.float64)
            iw = np.maximum(np.minimum(boxes[:, 2], b[2]) - np.maximum(boxes[:, 0], b[0]) + 1, 0)
            ih = np.maximum(np.minimum(boxes[:, 3], b[3]) - np.maximum(boxes[:, 1], b[1]) + 1, 0)
            inter = iw * ih
            union = (
                (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
                + (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
                - inter
            )
            iou = inter / union
            j = int(iou.argmax())
            best = iou[j]
        if best > 0.5:
            if difficult[j]:
                continue
            if not taken[j]:
                tp[i], taken[j] = 1, True
            else:
                fp[i] = 1
        else:
            fp[i] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return voc07_ap(recall, precision)


def map_50_voc07(detections: list[dict], dataset: DetectionSet) -> tuple[float, dict[str, float | None]]:
    """Mean VOC07 AP over the classes that have ground truth, and each class's AP."""
    per_class = {name: voc07_class_ap(detections, dataset, k) for k, name in enumerate(dataset.classes)}
    scored = [ap for ap in per_class.values() if ap is not None]
    return (float(np.mean(scored)) if scored else math.nan), per_class


def coco_map(detections: list[dict], dataset: DetectionSet) -> tuple[float, float]:
    """COCO AP at IoU 0.5 and averaged over [0.5:0.95], by pycocotools on continuous boxes (difficult: crowd)."""
    try:
        from pycocotools.coco import COCO as CocoApi
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise UserError("map_50 and map need pycocotools: pip install 'resnets[detection]'") from None
    ids = {str(a.image_id): i for i, a in enumerate(dataset.annotations)}
    images: list[dict[str, Any]] = []
    objects: list[dict[str, Any]] = []
    for i, a in enumerate(dataset.annotations):
        images.append({"id": i, "width": a.width, "height": a.height})
        for box, label, hard in zip(dataset.continuous(a.boxes), a.labels, a.difficult):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            objects.append(
                {
                    "id": len(objects) + 1,
                    "image_id": i,
                    "category_id": int(label),
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": int(hard),
                }
            )
    if not objects:
        return math.nan, math.nan
    truth = CocoApi()
    categories = [{"id": k, "name": n} for k, n in enumerate(dataset.classes)]
    # types-pycocotools' TypedDicts require file_name, segmentation and supercategory, which bbox scoring never reads
    truth.dataset = {"images": images, "annotations": objects, "categories": categories}  # type: ignore[typeddict-item]
    index = {n: k for k, n in enumerate(dataset.classes)}
    results = []
    for d in detections:
        box = dataset.continuous(np.asarray(d["box"], np.float32))[0]
        results.append(
            {
                "image_id": ids[str(d["image"])],
                "category_id": index[d["label"]],
                "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                "score": float(d["score"]),
            }
        )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        truth.createIndex()
        if not results:
            return 0.0, 0.0
        found = truth.loadRes(results)
        scoring = COCOeval(truth, found, "bbox")
        scoring.evaluate()
        scoring.accumulate()
        scoring.summarize()
    return float(scoring.stats[1]), float(scoring.stats[0])


def evaluate_detections(detections: list[dict], dataset: DetectionSet) -> dict:
    """map_50_voc07, map_50, map, per-class VOC07 AP and the image count, in percent."""
    voc, per_class = map_50_voc07(detections, dataset)
    at_50, averaged = coco_map(detections, dataset)

    def pct(v: float | None) -> float | None:
        return None if v is None or math.isnan(v) else round(100 * v, 2)

    return {
        "map_50_voc07": pct(voc),
        "map_50": pct(at_50),
        "map": pct(averaged),
        "per_class": {k: pct(v) for k, v in per_class.items()},
        "images": len(dataset.annotations),
        "detections": len(detections),
    }
