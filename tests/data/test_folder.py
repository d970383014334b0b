from __future__ import annotations

from pathlib import Path

import pytest

from resnets.data.folder import scan_split
from resnets.errors import UserError

from .conftest import CIFAR_CLASSES, PER_CLASS, save_image


def test_classes_are_sorted_folder_names_equal_to_the_official_cifar_order(image_folder: Path) -> None:
    scan = scan_split(image_folder, "train")
    assert scan.classes == CIFAR_CLASSES
    assert len(scan.files) == len(scan.labels) == PER_CLASS * len(CIFAR_CLASSES)
    assert [scan.classes[label] for label in scan.labels] == [f.parent.name for f in scan.files]


def test_files_are_sorted_within_a_class(image_folder: Path) -> None:
    scan = scan_split(image_folder, "train")
    bird = [f for f in scan.files if f.parent.name == "bird"]
    assert bird == sorted(bird)
    assert scan.files == sorted(scan.files)


def test_non_image_files_are_ignored_and_counted(image_folder: Path) -> None:
    (image_folder / "train" / "cat" / "notes.txt").write_text("x")
    (image_folder / "train" / "README").write_text("x")  # beside the class folders
    scan = scan_split(image_folder, "train")
    assert sorted(p.name for p in scan.ignored) == ["README", "notes.txt"]
    assert all(p.suffix == ".jpg" for p in scan.files)


def test_extensions_match_case_insensitively_and_subfolders_are_walked(image_folder: Path) -> None:
    save_image(image_folder / "train" / "cat" / "upper.JPG", fmt="JPEG")
    save_image(image_folder / "train" / "cat" / "sub" / "mixed.Png")
    scan = scan_split(image_folder, "train")
    names = {p.name for p in scan.files}
    assert {"upper.JPG", "mixed.Png"} <= names
    assert not scan.ignored


def test_hidden_files_and_folders_are_skipped(image_folder: Path) -> None:
    save_image(image_folder / "train" / ".hidden_class" / "a.png")
    save_image(image_folder / "train" / "cat" / ".thumbs" / "b.png")
    save_image(image_folder / "train" / "cat" / ".c.png")
    (image_folder / "train" / "cat" / ".DS_Store").write_text("x")
    scan = scan_split(image_folder, "train")
    assert scan.classes == CIFAR_CLASSES
    assert len(scan.files) == PER_CLASS * len(CIFAR_CLASSES)
    assert not scan.ignored


def test_val_labels_index_the_train_classes(image_folder: Path) -> None:
    save_image(image_folder / "val" / "horse" / "a.png")
    save_image(image_folder / "val" / "bird" / "b.png")
    scan = scan_split(image_folder, "val")
    assert scan.classes == CIFAR_CLASSES
    assert [scan.classes[label] for label in scan.labels] == ["bird", "horse"]


def test_val_class_missing_from_train_is_an_error(image_folder: Path) -> None:
    save_image(image_folder / "val" / "zebra" / "a.png")
    with pytest.raises(UserError, match=r"val/zebra .*train"):
        scan_split(image_folder, "val")


def test_empty_class_folder_is_an_error_naming_it(image_folder: Path) -> None:
    empty = image_folder / "train" / "unicorn"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match=f"class folder {empty} has no images"):
        scan_split(image_folder, "train")


def test_missing_data_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"data folder {tmp_path / 'nope'} does not exist"):
        scan_split(tmp_path / "nope", "train")


def test_data_path_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "data.tar.gz").write_text("x")
    with pytest.raises(UserError, match="data.tar.gz is not a folder"):
        scan_split(tmp_path / "data.tar.gz", "train")


def test_empty_data_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match=f"data folder {tmp_path / 'data'} is empty"):
        scan_split(tmp_path / "data", "train")


def test_missing_split_names_it_and_lists_the_splits_that_exist(image_folder: Path) -> None:
    save_image(image_folder / "val" / "cat" / "a.png")
    with pytest.raises(UserError, match=r"test does not exist \(splits in .*: train, val\)"):
        scan_split(image_folder, "test")


def test_split_without_class_folders_is_an_error(tmp_path: Path) -> None:
    save_image(tmp_path / "train" / "loose.png")
    with pytest.raises(UserError, match="has no class folders"):
        scan_split(tmp_path, "train")
