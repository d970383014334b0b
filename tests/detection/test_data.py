"""Reading VOC, labelImg and COCO layouts, and each bad-data case: a one-line error, or skipped and counted."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from resnets.core.errors import UserError
from resnets.detection.data import find_layout, load_detection_split

from .conftest import SLICE, voc_xml, write_voc


def test_voc_reads_boxes_classes_and_difficult(voc):
    data = load_detection_split(voc, "train")
    assert data.classes == ["cat", "dog"] and data.convention == "voc" and len(data.annotations) == 4
    b = data.annotations[1]
    assert (b.image_id, b.width, b.height) == ("b", 80, 72)
    assert b.boxes.tolist() == [[20, 20, 70, 60], [2, 2, 20, 20]] and b.labels.tolist() == [1, 0]
    assert b.difficult.tolist() == [False, True]
    assert data.continuous(b.boxes)[0].tolist() == [19, 19, 70, 60]  # 1-based inclusive -> continuous
    np.testing.assert_array_equal(data.to_annotation(data.continuous(b.boxes)), b.boxes)


def test_labelimg_and_coco_layouts(labelimg, coco):
    assert find_layout(labelimg) == "labelimg" and find_layout(coco) == "coco"
    flat = load_detection_split(labelimg, "train")
    assert [a.image_id for a in flat.annotations] == ["a", "b", "c", "d"] and flat.classes == ["cat", "dog"]
    c = load_detection_split(coco, "val")
    assert c.classes == ["cat", "dog"]  # categories by id
    assert c.annotations[0].image_id == 100 and c.convention == "coco"
    assert c.continuous(c.annotations[1].boxes).tolist() == flat.continuous(flat.annotations[1].boxes).tolist()
    assert c.annotations[1].difficult.tolist() == [False, True]  # iscrowd


def test_the_real_slice_keeps_its_classes():
    data = load_detection_split(SLICE, "val")
    assert data.classes == ["Platelets", "RBC", "WBC"] and len(data.annotations) == 2
    assert sum(len(a.boxes) for a in data.annotations) == 26 and data.annotations[0].width == 640


def one_bad(tmp_path, objects, *, stated=(64, 48)):
    """A VOC folder with a good image 'a' and image 'b' (64 x 48) whose XML holds `objects` and states `stated`."""
    root = write_voc(
        tmp_path / "bad", splits={"train": ["a", "b"]}, scenes=[("a", 64, 48, [("cat", [5, 5, 30, 30], 0)])]
    )
    Image.new("RGB", (64, 48)).save(root / "JPEGImages" / "b.jpg")
    (root / "Annotations" / "b.xml").write_text(voc_xml("b.jpg", *stated, objects))
    return root


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([("cat", [10, 10, 10, 20], 0)], "zero area"),
        ([("cat", [10, 10, 90, 20], 0)], "outside the 64x48 image"),
        ([("cow", [10, 10, 20, 20], 0)], "unknown class 'cow'"),
        ([], "has no objects"),
    ],
)
def test_bad_boxes_and_empty_images_error_or_skip(tmp_path, objects, message):
    root = one_bad(tmp_path, objects)
    with pytest.raises(UserError, match=message) as e:
        load_detection_split(root, "train", classes=["cat"])
    assert "b.xml" in str(e.value) or "b.jpg" in str(e.value)
    assert "\n" not in str(e.value) and "--skip-bad-images" in str(e.value)
    data = load_detection_split(root, "train", classes=["cat"], skip_bad_images=True)
    assert [a.image_id for a in data.annotations] == ["a"]
    # A dropped box leaves image b empty, so it is skipped too.
    assert data.summary() == ("skipped 1 images" if not objects else "skipped 1 images, skipped 1 boxes")


def test_unreadable_files_error_or_skip(tmp_path):
    root = one_bad(tmp_path, [("cat", [1, 1, 9, 9], 0)])
    (root / "JPEGImages" / "b.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match="cannot read image .*b.jpg"):
        load_detection_split(root, "train")
    assert load_detection_split(root, "train", skip_bad_images=True).summary() == "skipped 1 images"
    (root / "Annotations" / "b.xml").write_text("<annotation><object>")
    with pytest.raises(UserError, match="cannot parse annotation .*b.xml"):
        load_detection_split(root, "train")


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "png-named-jpg"])
def test_odd_images_and_wrong_sizes_are_read_by_content(tmp_path, mode):
    root = one_bad(tmp_path, [("cat", [1, 1, 9, 9], 0)], stated=(0, 0))
    path = root / "JPEGImages" / "b.jpg"
    if mode == "png-named-jpg":
        Image.new("RGB", (64, 48)).save(path, format="PNG")
    else:
        Image.new(mode, (64, 48)).save(path, format="JPEG" if mode != "RGBA" else "PNG")
    data = load_detection_split(root, "train")
    b = data.annotations[1]
    assert (b.width, b.height) == (64, 48) and data.corrected_sizes == 1  # the XML said 0 x 0
    from resnets.data.decode import decode_image

    assert decode_image(b.file).shape == (3, 48, 64)
