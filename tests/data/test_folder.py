from __future__ import annotations

from pathlib import Path

import pytest

from resnets.core.errors import UserError
from resnets.data.folder import has_split, scan_split

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


@pytest.fixture
def flat_val(image_folder: Path) -> Path:
    """ROOT/val/ holding three loose images (no class folders) beside the CIFAR train classes."""
    for name in ("a.png", "b.JPEG", "c.png"):
        save_image(image_folder / "val" / name, fmt="PNG")
    return image_folder


@pytest.mark.parametrize(
    "text", ["a.png cat\nb.JPEG 9\n\nc.png bird\n", "c bird\nb truck\na cat\nunused.png dog\n"], ids=["names", "stems"]
)
def test_flat_split_is_labelled_by_a_labels_file_of_names_or_indices(flat_val: Path, tmp_path: Path, text) -> None:
    (tmp_path / "labels.txt").write_text(text)
    scan = scan_split(flat_val, "val", tmp_path / "labels.txt")
    assert [p.name for p in scan.files] == ["a.png", "b.JPEG", "c.png"]
    assert [scan.classes[label] for label in scan.labels] == ["cat", "truck", "bird"]
    assert scan.classes == CIFAR_CLASSES


def test_flat_split_is_labelled_by_kaggles_solution_csv(flat_val: Path, tmp_path: Path) -> None:
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("ImageId,PredictionString\na,cat 1 2 3 4 cat 5 6 7 8\nb,ship 0 0 9 9 \nc,frog 1 1 2 2\n")
    scan = scan_split(flat_val, "val", csv)
    assert [scan.classes[label] for label in scan.labels] == ["cat", "ship", "frog"]


def test_flat_split_without_a_labels_file_asks_for_one(flat_val: Path) -> None:
    with pytest.raises(UserError, match=r"val has no class folders; .*pass --val-labels FILE"):
        scan_split(flat_val, "val")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.png cat\nb.JPEG zebra\n", r"line 2 of .*labels.txt names class 'zebra'"),
        ("a.png cat\nb.JPEG 10\n", r"class '10', which is neither .* below 10"),
        ("a.png cat dog\n", r"line 1 of .*labels.txt is not '<file name> <class>'"),
        ("a.png cat\nc.png dog\n", r"image .*b.JPEG has no label in .*labels.txt"),
    ],
    ids=["unknown-class", "index-out-of-range", "bad-line", "unlabelled-image"],
)
def test_bad_labels_file_is_an_error_naming_it(flat_val: Path, tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "labels.txt").write_text(text)
    with pytest.raises(UserError, match=message):
        scan_split(flat_val, "val", tmp_path / "labels.txt")


def test_missing_labels_file_is_an_error_naming_it(flat_val: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=f"cannot read labels file {tmp_path / 'absent.txt'}"):
        scan_split(flat_val, "val", tmp_path / "absent.txt")


def test_labels_file_for_a_split_with_class_folders_is_an_error(image_folder: Path, tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_text("")
    with pytest.raises(UserError, match="train has class folders, so it needs no labels file"):
        scan_split(image_folder, "train", tmp_path / "labels.txt")


def test_has_split_tells_which_split_folders_exist(flat_val: Path) -> None:
    assert has_split(flat_val, "train") and has_split(flat_val, "val") and not has_split(flat_val, "test")
