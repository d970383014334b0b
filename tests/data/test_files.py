from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.core.errors import UserError
from resnets.data import ImageFiles, ImageSet, load_split, open_split

from .conftest import IMAGENETTE_CLASSES, IMAGENETTE_PER_CLASS, FakeCifar, save_image


def pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        return torch.from_numpy(np.asarray(img.convert("RGB")).transpose(2, 0, 1).copy())


def test_images_are_decoded_on_demand_with_their_labels(imagenette: Path) -> None:
    files = open_split(imagenette, progress=False)
    assert isinstance(files, ImageFiles) and len(files) == IMAGENETTE_CLASSES * IMAGENETTE_PER_CLASS
    assert len(files.classes) == IMAGENETTE_CLASSES and all(c.startswith("n0") for c in files.classes)
    assert files.labels.dtype == torch.int64 and torch.bincount(files.labels).tolist() == [4, 4, 4]
    for i in (0, 5, 11):
        path = files.path(i)
        assert path.suffix == ".JPEG" and files.classes[files.labels[i]] == path.parent.name
        image = files.image(i)
        assert image.dtype == torch.uint8 and image.shape == (3, 224, 224)
        assert torch.equal(image, pixels(path))
    assert (files.skipped, files.ignored) == (0, 0)


def test_decode_cache_gives_the_same_images_of_any_size(imagenette_copy: Path, cache_dir: Path) -> None:
    save_image(imagenette_copy / "train" / "zz" / "wide.png", size=(37, 20))
    save_image(imagenette_copy / "train" / "zz" / "gray.png", size=(15, 41), mode="L")
    plain = open_split(imagenette_copy, progress=False)
    cached = open_split(imagenette_copy, decode_cache=True, cache_dir=cache_dir, workers=1, progress=False)
    assert len(cached) == len(plain) == 14 and torch.equal(cached.labels, plain.labels)
    assert [cached.image(i).shape[1:] for i in (12, 13)] == [(41, 15), (20, 37)]  # gray.png sorts first
    for i in range(len(plain)):
        assert torch.equal(cached.image(i), plain.image(i))


def test_a_bad_file_raises_on_demand_or_is_skipped_by_the_decode_cache(imagenette_copy: Path, cache_dir: Path) -> None:
    bad = sorted((imagenette_copy / "train").glob("*/*.JPEG"))[5]
    bad.write_bytes(bad.read_bytes()[:500])
    files = open_split(imagenette_copy, progress=False)
    with pytest.raises(UserError, match=re.escape(f"cannot decode image {bad}")):
        files.image(5)
    with pytest.raises(UserError, match=re.escape(str(bad))):
        open_split(imagenette_copy, decode_cache=True, cache_dir=cache_dir, workers=1, progress=False)
    cached = open_split(
        imagenette_copy, decode_cache=True, cache_dir=cache_dir, skip_bad_images=True, workers=1, progress=False
    )
    assert (len(cached), cached.skipped) == (11, 1) and bad not in [cached.path(i) for i in range(11)]
    assert torch.equal(cached.labels, torch.cat([files.labels[:5], files.labels[6:]]))
    assert torch.equal(cached.image(5), files.image(6))


@pytest.mark.parametrize("decode_cache", [False, True])
def test_subset_keeps_images_and_labels_in_the_given_order(imagenette: Path, cache_dir: Path, decode_cache) -> None:
    files = open_split(imagenette, decode_cache=decode_cache, cache_dir=cache_dir, workers=1, progress=False)
    part = files.subset(torch.tensor([9, 2, 4]))
    assert len(part) == 3 and part.labels.tolist() == files.labels[[9, 2, 4]].tolist()
    assert torch.equal(part.image(0), files.image(9)) and part.path(2) == files.path(4)
    assert part.classes == files.classes


def test_image_files_pickle_cheaply_without_their_memory_map(imagenette: Path, cache_dir: Path) -> None:
    files = open_split(imagenette, decode_cache=True, cache_dir=cache_dir, workers=1, progress=False)
    first = files.image(0)  # opens the memory map
    data = pickle.dumps(files)
    assert len(data) < 5000  # names, labels and the index only: no pixels
    copy = pickle.loads(data)
    assert torch.equal(copy.image(0), first) and torch.equal(copy.labels, files.labels)


def test_flat_split_with_a_labels_file(imagenette_copy: Path, tmp_path: Path) -> None:
    first = sorted((imagenette_copy / "train").glob("*/*.JPEG"))[0]
    save_image(imagenette_copy / "val" / "x.JPEG", size=(30, 20), fmt="PNG")  # a PNG named .JPEG
    (imagenette_copy / "val" / first.name).write_bytes(first.read_bytes())
    labels = tmp_path / "val.txt"
    labels.write_text(f"x.JPEG 2\n{first.name} {first.parent.name}\n")
    val = open_split(imagenette_copy, "val", labels_file=labels, progress=False)
    assert val.labels.tolist() == [0, 2]  # the JPEG's wnid sorts first among the train classes
    assert val.image(1).shape == (3, 20, 30) and torch.equal(val.image(0), pixels(first))


def test_image_set_has_the_same_image_and_subset(image_folder: Path, cache_dir: Path) -> None:
    images = load_split(image_folder, cache_dir=cache_dir, workers=1, progress=False)
    part = images.subset([7, 3])
    assert isinstance(part, ImageSet) and part.classes == images.classes
    assert torch.equal(part.images, images.images[[7, 3]]) and part.labels.tolist() == images.labels[[7, 3]].tolist()
    assert torch.equal(images.image(7), images.images[7])


def test_official_cifar_folder_opens_as_its_image_set(fake_cifar: FakeCifar) -> None:
    test = open_split(fake_cifar.folder, "test", progress=False)
    assert isinstance(test, ImageSet) and len(test) == 3
