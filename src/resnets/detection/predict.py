"""A trained detector's detections: on every image of an annotated split (for scoring), or on one image, with boxes
in the convention of the annotations it was trained on."""

from __future__ import annotations

import torch
from tqdm import tqdm

from ..core.errors import UserError
from ..data.decode import BadImage, decode_image
from .data import DetectionSet, in_convention
from .model import FasterRCNN


def detections_of(
    model: FasterRCNN, dataset: DetectionSet, device: torch.device, precision: str, skip_bad_images: bool
) -> list[dict]:
    """The detector's detections on every image of `dataset`, in the annotations' pixel convention; with
    `skip_bad_images` an image that does not decode is left out of `dataset` and counted there."""
    out, kept = [], []
    for a in tqdm(dataset.annotations, desc="detecting", unit="img", file=None):
        try:
            image = torch.from_numpy(decode_image(a.file))
        except BadImage as e:
            if not skip_bad_images:
                raise UserError(f"{e}, or pass --skip-bad-images to skip and count such images") from None
            dataset.skipped_images.append(str(e))
            continue
        kept.append(a)
        result = model.detect([image.to(device)], precision=precision)[0]
        boxes = dataset.to_annotation(result["boxes"].cpu().numpy())
        for box, score, label in zip(boxes, result["scores"].tolist(), result["labels"].tolist()):
            out.append({"image": a.image_id, "label": dataset.classes[label], "box": box.tolist(), "score": score})
    dataset.annotations = kept
    return out


def detect_one(
    model: FasterRCNN,
    state: dict,
    image: torch.Tensor,
    name: str,
    device: torch.device,
    precision: str,
    threshold: float,
) -> tuple[torch.Tensor, list[dict]]:
    """The boxes (continuous, for drawing) and the detections of one image scoring at least `threshold`, their
    boxes in the convention of the training annotations (VOC: 1-based inclusive pixels)."""
    result = model.detect([image.to(device)], precision=precision)[0]
    keep = result["scores"] >= threshold
    boxes, scores, labels = result["boxes"][keep].cpu(), result["scores"][keep].tolist(), result["labels"][keep]
    found = [
        {"image": name, "label": state["classes"][int(k)], "box": b.tolist(), "score": s}
        for b, s, k in zip(in_convention(boxes.numpy(), state["convention"]), scores, labels)
    ]
    return boxes, found
