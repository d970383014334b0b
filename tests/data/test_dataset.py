from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.core.errors import UserError
from resnets.data import ImageSet, load_split

from .conftest import CIFAR_CLASSES, IMAGENETTE_ARCHIVE, PER_CLASS, FakeCifar, extract_members, save_image


def test_image_folder_loads_as_uint8_images_and_int64_labels(image_folder: Path, tmp_path: Path) -> None:
    loaded = load_split(image_folder, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert isinstance(loaded, ImageSet)
    n = PER_CLASS * len(CIFAR_CLASSES)
    assert loaded.images.shape == (n, 3, 32, 32) and loaded.images.dtype == torch.uint8
    assert loaded.images.is_contiguous()
    assert loaded.labels.dtype == torch.int64 and loaded.labels.tolist() == sorted(loaded.labels.tolist())
    assert loaded.classes == CIFAR_CLASSES and (loaded.skipped, loaded.ignored) == (0, 0)
    first_truck = sorted((image_folder / "train" / "truck").iterdir())[0]
    with Image.open(first_truck) as img:
        expected = np.asarray(img.convert("RGB")).transpose(2, 0, 1)
    index = loaded.labels.tolist().index(CIFAR_CLASSES.index("truck"))
    np.testing.assert_array_equal(loaded.images[index].numpy(), expected)


def test_image_folder_val_split_uses_the_train_classes(image_folder: Path) -> None:
    save_image(image_folder / "val" / "ship" / "a.png", size=(32, 32))
    val = load_split(image_folder, "val", workers=1, progress=False)
    assert val.classes == CIFAR_CLASSES and val.labels.tolist() == [8]


def test_missing_split_names_the_path_and_the_splits_that_exist(image_folder: Path) -> None:
    message = f"{image_folder / 'val'} does not exist (splits in {image_folder}: train)"
    with pytest.raises(UserError, match=re.escape(message)):
        load_split(image_folder, "val", progress=False)


@pytest.mark.parametrize("level", ["folder", "parent"])
def test_official_cifar_folder_or_its_parent(fake_cifar: FakeCifar, level: str) -> None:
    data = fake_cifar.folder if level == "folder" else fake_cifar.folder.parent
    train = load_split(data, progress=False)
    test = load_split(str(data), "test", progress=False)
    assert train.classes == test.classes == CIFAR_CLASSES
    assert len(train) == 15 and len(test) == 3
    np.testing.assert_array_equal(test.images.reshape(3, -1).numpy(), fake_cifar.test_data)


def test_official_cifar_needs_no_cache(fake_cifar: FakeCifar, tmp_path: Path) -> None:
    load_split(fake_cifar.folder, cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "default-cache").exists()


def test_missing_data_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=re.escape(f"data folder {tmp_path / 'absent'} does not exist")):
        load_split(tmp_path / "absent", progress=False)


def test_real_imagenette_jpegs_with_uppercase_extension(tmp_path: Path) -> None:
    root = extract_members(IMAGENETTE_ARCHIVE, tmp_path / "imagenette", per_folder=3, folders=1)
    (root / "train").symlink_to(root / "val")  # the archive holds val/ only; train supplies the classes
    loaded = load_split(root, "val", cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert loaded.images.shape == (3, 3, 224, 224) and len(loaded.classes) == 1
    assert loaded.classes[0].startswith("n0")


def test_images_of_different_sizes_are_an_error_naming_the_first_odd_one(tmp_path: Path) -> None:
    files = [save_image(tmp_path / "train" / "a" / f"{i}.png", size=s) for i, s in enumerate([(8, 8), (9, 8), (7, 7)])]
    with pytest.raises(UserError, match=re.escape(f"image {files[1]} is 9x8 but {files[0]} is 8x8")) as info:
        load_split(tmp_path, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert "open_split" in str(info.value) and "\n" not in str(info.value)
