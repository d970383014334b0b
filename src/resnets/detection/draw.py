"""Detections drawn on their image, for people to look at."""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from PIL import Image, ImageDraw, PngImagePlugin

from ..core.atomic import atomic_write

COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180))
MARK = ("Software", "resnets detect predict")  # a PNG text chunk: tells our drawings from the user's images


def draw_detections(image: torch.Tensor, boxes: torch.Tensor, captions: list[str], out: Path) -> None:
    """Write the uint8 image (3, H, W) as a PNG at `out` with each continuous box outlined and captioned."""
    canvas = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    pen = ImageDraw.Draw(canvas)
    for i, (box, caption) in enumerate(zip(boxes.tolist(), captions)):
        colour = COLOURS[i % len(COLOURS)]
        pen.rectangle(box, outline=colour, width=2)
        pen.text((box[0] + 3, box[1] + 2), caption, fill=colour)
    mark = PngImagePlugin.PngInfo()
    mark.add_text(*MARK)
    with atomic_write(out) as f:
        canvas.save(f, format="PNG", pnginfo=mark)


class Drawings:
    """The drawings of one run into `folder`, of the images `inputs`: each under a name of its own, <stem>.png, else
    <stem>-2.png, -3, ...; never one of the inputs, another drawing of this run, or an existing file other than an
    earlier drawing of ours."""

    def __init__(self, folder: Path, inputs: list[Path]):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.inputs = {f.resolve() for f in inputs}
        self.taken: set[Path] = set()

    def write(self, image: torch.Tensor, boxes: torch.Tensor, captions: list[str], source: Path) -> Path:
        """Draw the boxes on `image`, read from input `source`; returns where the drawing went."""
        path = self.path(source)
        draw_detections(image, boxes, captions, path)
        return path

    def path(self, source: Path) -> Path:
        """The next free name for the drawing of `source` (taken from now on)."""
        stem = source.stem
        names = (self.folder / (f"{stem}.png" if n == 1 else f"{stem}-{n}.png") for n in itertools.count(1))
        path = next(p for p in names if self._free(p.resolve()) and _replaceable(p))
        self.taken.add(path.resolve())
        return path

    def _free(self, resolved: Path) -> bool:
        return resolved not in self.taken and resolved not in self.inputs


def _replaceable(path: Path) -> bool:
    """Whether a drawing may be written at `path`: nothing is there (not even a dangling link), or our drawing."""
    return not (path.exists() or path.is_symlink()) or is_drawing(path)


def is_drawing(path: Path) -> bool:
    """Whether `path` is a regular file that draw_detections wrote (a PNG with its mark)."""
    if not path.is_file() or path.is_symlink():
        return False
    try:
        with Image.open(path) as img:
            return img.format == "PNG" and img.info.get(MARK[0]) == MARK[1]
    except (OSError, ValueError, SyntaxError):
        return False
