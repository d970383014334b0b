"""Detection annotations from three layouts: PASCAL VOC, a labelImg flat folder (image + same-name .xml), COCO JSON.

Boxes are kept in the annotation's own pixel convention (what the detections file and VOC07 scoring use):
VOC / labelImg XML count pixels from 1 and include both ends; COCO boxes are continuous. `continuous()` gives the
network's (x1, y1, x2, y2) with x2 - x1 the width in pixels, and `to_annotation()` goes back.
"""

from __future__ import annotations

import glob
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core.errors import UserError, parse_json
from ..data.decode import TOO_BIG
from ..data.folder import IMAGE_EXTENSIONS
from ..data.paths import glob_files, what_is

VOC, LABELIMG, COCO = "voc", "labelimg", "coco"
SKIP_HINT = "fix or remove it, or pass --skip-bad-images"


@dataclass
class Annotation:
    """One image's objects: boxes (G, 4) in the annotation's convention, class indices, VOC difficult flags."""

    image_id: str | int  # the id in the split list (VOC), the file stem (labelImg) or the COCO image id
    file: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


@dataclass
class DetectionSet:
    """The annotations of one split, its class names, and what was skipped or corrected on the way."""

    annotations: list[Annotation]
    classes: list[str]
    convention: str  # 'voc' (1-based, inclusive: VOC and labelImg) or 'coco' (continuous)
    skipped_images: list[str] = field(default_factory=list)
    skipped_boxes: list[str] = field(default_factory=list)
    corrected_sizes: int = 0  # XMLs whose stated size was 0 or disagreed with the image; the image's was used

    def continuous(self, boxes: np.ndarray) -> np.ndarray:
        """Annotation boxes as continuous (x1, y1, x2, y2) pixel coordinates."""
        return in_convention(boxes, self.convention, -1)

    def to_annotation(self, boxes: np.ndarray) -> np.ndarray:
        """Continuous boxes in the annotation's convention (VOC: +1 on the top-left corner)."""
        return in_convention(boxes, self.convention)

    def summary(self) -> str:
        """One line on what was skipped or corrected, or '' if nothing was."""
        parts = [f"skipped {len(self.skipped_images)} images"] if self.skipped_images else []
        parts += [f"skipped {len(self.skipped_boxes)} boxes"] if self.skipped_boxes else []
        parts += [f"took the image's size for {self.corrected_sizes} XMLs"] if self.corrected_sizes else []
        return ", ".join(parts)


def in_convention(boxes, convention: str, direction: int = 1) -> np.ndarray:
    """Continuous (x1, y1, x2, y2) boxes in `convention`, the one place of VOC's: 1-based inclusive pixels, so +1 on
    the top-left corner (`direction` -1: back to continuous); COCO's boxes are continuous already."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return boxes + direction * np.array([1, 1, 0, 0], np.float32) if convention == VOC else boxes


def find_layout(root: Path) -> str:
    """Which layout `root` holds: 'voc' (Annotations/, JPEGImages/), 'coco' (instances_*.json) or 'labelimg'."""
    if (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir():
        return VOC
    if list(root.glob("instances_*.json")) or list(root.glob("annotations/instances_*.json")):
        return COCO
    if any(root.glob("*.xml")) or any(root.glob("*/*.xml")):
        return LABELIMG
    raise UserError(
        f"{root} is not a detection data set: expected a PASCAL VOC folder (Annotations/, JPEGImages/, "
        "ImageSets/Main/<split>.txt), a COCO folder (annotations/instances_<split>.json) or images with same-name .xml"
    )


def load_detection_split(
    data: str | Path,
    split: str = "train",
    *,
    classes: list[str] | None = None,
    skip_bad_images: bool = False,
    allow_empty: bool = False,
) -> DetectionSet:
    """The annotations of `split` in folder `data`, any of the three layouts.

    `classes`: the class order to use (a trained model's); None reads them from the data (VOC / labelImg: sorted
    names; COCO: categories by id). `allow_empty` keeps images without objects (testing); training refuses them.
    """
    root = Path(data).expanduser()
    if not root.is_dir():
        raise UserError(f"data folder {root} {what_is(root)}; pass a VOC, labelImg or COCO folder")
    layout = find_layout(root)
    if layout == COCO:
        return _read_coco(root, split, classes, skip_bad_images, allow_empty)
    if layout == VOC:
        listing = root / "ImageSets" / "Main" / f"{split}.txt"
        if not listing.is_file():
            raise UserError(f"{listing} {what_is(listing)}; a VOC folder needs a split list ImageSets/Main/{split}.txt")
        try:
            ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read the split list {listing} ({e}); it lists one image id a line") from None
        items = [(i, root / "Annotations" / f"{i}.xml", root / "JPEGImages") for i in ids]
    else:
        folder = root / split if (root / split).is_dir() else root
        # Regular files only, each once (data.paths): parsing a FIFO named *.xml would wait forever.
        items = [(x.stem, x, folder) for x in glob_files(str(Path(glob.escape(str(folder))) / "*.xml")).files]
    if not items:
        raise UserError(f"split {split!r} of {root} lists no images")
    parsed, skipped = [], []
    for image_id, xml, images in items:
        try:
            parsed.append(_read_xml(image_id, xml, images))
        except UserError as e:
            if not skip_bad_images:
                raise
            skipped.append(str(e))
    names = classes if classes is not None else sorted({name for p in parsed for name, *_ in p[1]})
    dataset = DetectionSet([], list(names), VOC, skipped_images=skipped)
    for (image_id, file, width, height, corrected, xml), objects in parsed:
        dataset.corrected_sizes += corrected
        boxes, labels, difficult = [], [], []
        for name, box, hard in objects:
            problem = None
            if name not in dataset.classes:
                problem = f"{xml}: unknown class {name!r} (classes: {', '.join(dataset.classes)})"
            elif flaw := _box_flaw(box, width, height):
                problem = f"{xml}: box {box} {flaw}"
            if _rejected(dataset, problem, skip_bad_images):
                continue
            boxes.append(box)
            labels.append(dataset.classes.index(name))
            difficult.append(hard)
        _add(dataset, image_id, file, width, height, boxes, labels, difficult, skip_bad_images, allow_empty)
    return _nonempty(dataset, root, split)


def _box_flaw(box: list[float], width: int, height: int) -> str | None:
    """What is wrong with box (x1, y1, x2, y2) of a `width` x `height` image in the annotation's convention, or None.

    NaN fails every comparison, so it is named first: it would pass the others and poison training and scoring."""
    if not all(math.isfinite(v) for v in box):
        return "has a coordinate that is not a finite number"
    if box[2] <= box[0] or box[3] <= box[1]:  # a point or a line, as BCCD's two (504, 337, 504, 337)
        return "has zero area"
    if box[0] < 0 or box[1] < 0 or box[2] > width + 1 or box[3] > height + 1:
        return f"lies outside the {width}x{height} image"
    return None


def _rejected(dataset: DetectionSet, problem: str | None, skip_bad_images: bool) -> bool:
    """Whether a box with `problem` is left out (counted under --skip-bad-images); without it, the problem stops."""
    if problem is None:
        return False
    if not skip_bad_images:
        raise UserError(f"{problem}; {SKIP_HINT}")
    dataset.skipped_boxes.append(problem)
    return True


def _add(dataset, image_id, file, width, height, boxes, labels, difficult, skip_bad_images, allow_empty) -> None:
    if not boxes and not allow_empty:
        if not skip_bad_images:
            raise UserError(f"{file} has no objects to train on; {SKIP_HINT}")
        dataset.skipped_images.append(f"{file}: no objects")
        return
    dataset.annotations.append(
        Annotation(
            image_id,
            file,
            width,
            height,
            np.asarray(boxes, np.float32).reshape(-1, 4),
            np.asarray(labels, np.int64),
            np.asarray(difficult, bool),
        )
    )


def _nonempty(dataset: DetectionSet, root: Path, split: str) -> DetectionSet:
    if not dataset.annotations:
        first = (dataset.skipped_images or ["no images"])[0]
        raise UserError(f"no usable images in split {split!r} of {root}; the first problem: {first}")
    return dataset


def image_size(file: Path) -> tuple[int, int]:
    """(width, height) from the image's header (the format from its content, whatever the extension)."""
    try:
        with Image.open(file) as img:
            return img.size
    except FileNotFoundError:
        raise UserError(f"image {file} does not exist; {SKIP_HINT}") from None
    except Image.DecompressionBombError as e:  # Pillow's refusal of a header past twice its pixel limit
        raise UserError(f"image {file} is {TOO_BIG} ({e}); {SKIP_HINT}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"cannot read image {file} ({e}); {SKIP_HINT}") from None


def _image_file(folder: Path, stem: str, named: str | None) -> Path:
    if named and (folder / named).is_file():
        return folder / named
    for ext in IMAGE_EXTENSIONS:
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    raise UserError(f"no image for {stem} in {folder} (looked for {named or stem + '.jpg'}); {SKIP_HINT}")


def _read_xml(image_id: str, xml: Path, images: Path):
    """((id, image file, width, height, size corrected, xml), [(class, box, difficult)]) of one VOC-style XML."""
    if not xml.is_file():  # a FIFO would block the parser forever, a folder fails it
        raise UserError(f"annotation {xml} {what_is(xml)}; {SKIP_HINT}")
    try:
        tree = ET.parse(xml).getroot()
    except OSError as e:
        raise UserError(f"cannot read annotation {xml} ({e.strerror or e}); {SKIP_HINT}") from None
    except ET.ParseError as e:
        raise UserError(f"cannot parse annotation {xml} ({e}); {SKIP_HINT}") from None
    file = _image_file(images, xml.stem, tree.findtext("filename"))
    width, height = image_size(file)
    stated = (_number(tree.findtext("size/width")), _number(tree.findtext("size/height")))
    objects = []
    for obj in tree.iter("object"):
        name = (obj.findtext("name") or "").strip()
        coords = [_number(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        if not name or None in coords:
            raise UserError(f"{xml}: an object lacks a name or a complete bndbox; {SKIP_HINT}")
        objects.append((name, coords, (obj.findtext("difficult") or "0").strip() == "1"))
    return (image_id, file, width, height, stated != (width, height), xml), objects


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _read_coco(root: Path, split: str, classes, skip_bad_images: bool, allow_empty: bool) -> DetectionSet:
    named = sorted([*root.glob(f"instances_{split}*.json"), *root.glob(f"annotations/instances_{split}*.json")])
    found = [p for p in named if p.is_file()]  # regular files: reading a FIFO would wait forever
    if not found:
        if named:
            raise UserError(f"{named[0]} {what_is(named[0])}; a COCO split's annotations are a JSON file")
        raise UserError(f"{root} has no instances_{split}*.json (COCO layout); name the split's annotation file so")
    path = found[0]
    coco = coco_instances(path)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    dataset = DetectionSet([], list(classes) if classes is not None else [names[k] for k in sorted(names)], COCO)
    folders = [p for p in (root / split, root / "images" / split, root / "images", root) if p.is_dir()]
    per_image: dict[int, list[dict]] = {}
    for obj in coco["annotations"]:
        per_image.setdefault(obj["image_id"], []).append(obj)
    for info in coco["images"]:
        try:
            file = next((f / info["file_name"] for f in folders if (f / info["file_name"]).is_file()), None)
            if file is None:
                raise UserError(f"image {info['file_name']} of {path} is in none of {', '.join(map(str, folders))}")
            width, height = image_size(file)
        except UserError as e:
            if not skip_bad_images:
                raise
            dataset.skipped_images.append(str(e))
            continue
        dataset.corrected_sizes += (info.get("width"), info.get("height")) != (width, height)
        boxes, labels, difficult = [], [], []
        for obj in per_image.get(info["id"], []):
            x, y, w, h = obj["bbox"]
            box = [x, y, x + w, y + h]
            name = names.get(obj["category_id"])
            problem = None
            if name not in dataset.classes:
                problem = f"{path}: image {info['id']} has unknown category {obj['category_id']}"
            elif flaw := _box_flaw(box, width, height):
                problem = f"{path}: box {obj['bbox']} of image {info['id']} {flaw}"
            if _rejected(dataset, problem, skip_bad_images):
                continue
            assert name is not None  # an unknown category is a problem above: rejected, or skipped
            boxes.append(box)
            labels.append(dataset.classes.index(name))
            difficult.append(bool(obj.get("iscrowd", 0)))
        _add(dataset, info["id"], file, width, height, boxes, labels, difficult, skip_bad_images, allow_empty)
    return _nonempty(dataset, root, split)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_bbox(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(_is_int(x) or isinstance(x, float) for x in v)


# Per list of a COCO instances file: the keys every entry must have, each with its test and what it must be.
INTEGER, NAME = (_is_int, "an integer"), (lambda v: isinstance(v, str) and v != "", "a non-empty string")
COCO_ENTRIES = {
    "images": {"id": INTEGER, "file_name": NAME},
    "categories": {"id": INTEGER, "name": NAME},
    "annotations": {"image_id": INTEGER, "category_id": INTEGER, "bbox": (_is_bbox, "[x, y, width, height] numbers")},
}


def coco_instances(path: Path) -> dict[str, list[dict]]:
    """The images, categories and annotations of the COCO instances file `path`, their structure checked: a missing
    key, a wrong type or a repeated id is one line naming the file and the entry."""
    try:
        coco = parse_json(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: invalid JSON or UTF-8
        raise UserError(f"{path} is not a COCO instances file ({e})") from None
    if not isinstance(coco, dict):
        raise UserError(f"{path} is not a COCO instances file: it holds no JSON object of images and categories")
    coco.setdefault("annotations", [])  # a test split may come without its boxes
    for key, fields in COCO_ENTRIES.items():
        entries = coco.get(key)
        if not isinstance(entries, list):
            shown = "has no" if entries is None else "has no list of"
            raise UserError(f"{path} {shown} {key!r}; a COCO instances file lists images, categories and annotations")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise UserError(f"{path}: {key}[{i}] is not an object")
            for name, (test, kind) in fields.items():
                if name not in entry:
                    raise UserError(f"{path}: {key}[{i}] has no {name!r}")
                if not test(entry[name]):
                    raise UserError(f"{path}: {key}[{i}] has {name} {entry[name]!r}, which must be {kind}")
    for key, unique in (("images", "id"), ("categories", "id"), ("categories", "name")):
        seen = set()
        for i, entry in enumerate(coco[key]):
            if entry[unique] in seen:
                raise UserError(f"{path}: {key}[{i}] repeats {unique} {entry[unique]!r}; each must be unique")
            seen.add(entry[unique])
    return coco
