"""Detections drawn on their image, for people to look at."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, ImageDraw

from ..atomic import atomic_write

COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180))


def draw_detections(image: torch.Tensor, boxes: torch.Tensor, captions: list[str], out: Path) -> None:
    """Write the uint8 image (3, H, W) as a PNG at `out` with each continuous box outlined and captioned."""
    canvas = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    pen = ImageDraw.Draw(canvas)
    for i, (box, caption) in enumerate(zip(boxes.tolist(), captions)):
        colour = COLOURS[i % len(COLOURS)]
        pen.rectangle(box, outline=colour, width=2)
        pen.text((box[0] + 3, box[1] + 2), caption, fill=colour)
    with atomic_write(out) as f:
        canvas.save(f, format="PNG")
