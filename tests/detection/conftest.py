"""Detection fixtures: the shipped BCCD slice, synthetic VOC / labelImg / COCO folders, the shared real sets."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import shared_archive

SLICE = Path(__file__).parent / "data" / "bccd"


def voc_xml(filename: str, width: int, height: int, objects: list[tuple[str, list[float], int]]) -> str:
    """A PASCAL VOC annotation as labelImg writes it."""
    parts = [f"<annotation><filename>{filename}</filename>"]
    parts.append(f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>")
    for name, (x1, y1, x2, y2), difficult in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>"
            f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def synthetic_image(width: int, height: int, boxes: list[list[float]], seed: int = 0) -> Image.Image:
    """Noise with a bright rectangle on each box: something a detector can learn in a few steps."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    for x1, y1, x2, y2 in boxes:
        pixels[int(y1) - 1 : int(y2), int(x1) - 1 : int(x2)] = (220, 200, 40)
    return Image.fromarray(pixels)


# Per image: (id, width, height, objects). Two classes, one difficult box.
SCENES = [
    ("a", 96, 64, [("cat", [10, 8, 50, 40], 0)]),
    ("b", 80, 72, [("dog", [20, 20, 70, 60], 0), ("cat", [2, 2, 20, 20], 1)]),
    ("c", 64, 64, [("dog", [5, 30, 40, 60], 0)]),
    ("d", 72, 96, [("cat", [30, 10, 70, 50], 0), ("dog", [4, 60, 30, 90], 0)]),
]


def write_voc(root: Path, scenes=SCENES, splits=None) -> Path:
    """A PASCAL VOC folder of synthetic images; `splits` maps split -> ids (default: all in train and val)."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (name, w, h, objects) in enumerate(scenes):
        synthetic_image(w, h, [box for _, box, _ in objects], seed=i).save(root / "JPEGImages" / f"{name}.jpg")
        (root / "Annotations" / f"{name}.xml").write_text(voc_xml(f"{name}.jpg", w, h, objects))
    ids = [s[0] for s in scenes]
    for split, members in (splits or {"train": ids, "val": ids}).items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(members) + "\n")
    return root


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    return write_voc(tmp_path / "voc")


@pytest.fixture
def labelimg(tmp_path: Path) -> Path:
    root = tmp_path / "flat"
    root.mkdir()
    for i, (name, w, h, objects) in enumerate(SCENES):
        synthetic_image(w, h, [box for _, box, _ in objects], seed=i).save(root / f"{name}.png")
        (root / f"{name}.xml").write_text(voc_xml(f"{name}.png", w, h, objects))
    return root


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val").mkdir()
    categories = [{"id": 3, "name": "dog"}, {"id": 1, "name": "cat"}]
    images, objects = [], []
    for i, (name, w, h, objs) in enumerate(SCENES):
        synthetic_image(w, h, [box for _, box, _ in objs], seed=i).save(root / "val" / f"{name}.jpg")
        images.append({"id": 100 + i, "file_name": f"{name}.jpg", "width": w, "height": h})
        for cls, (x1, y1, x2, y2), hard in objs:
            objects.append(
                {
                    "id": len(objects) + 1,
                    "image_id": 100 + i,
                    "category_id": 1 if cls == "cat" else 3,
                    "bbox": [x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1],
                    "iscrowd": hard,
                    "area": 1.0,
                }
            )
    payload = {"images": images, "annotations": objects, "categories": categories}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(payload))
    return root


def extract_voc(archive_name: str, dest: Path) -> Path:
    """A full real VOC set from the shared folder (skipped where it is absent: tests/conftest.py shared_archive)."""
    with tarfile.open(shared_archive(archive_name)) as tar:
        tar.extractall(dest, filter="data")
    return next(p for p in dest.iterdir() if p.is_dir())
