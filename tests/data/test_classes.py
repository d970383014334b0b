"""A split's classes as a model's labels: only ROOT/<split> read, unknown classes refused, absent ones allowed."""

from pathlib import Path

import pytest

from resnets.core.errors import UserError
from resnets.data import load_split, open_split
from resnets.data.cifar import read_cifar10
from resnets.data.classes import model_labels
from resnets.data.folder import scan_split

from .conftest import CIFAR_CLASSES, FakeCifar, save_image

MODEL = ["horse", "dog", "frog", "cat"]  # the model's classes in its output order, which is not the folders' sorted one


def one_split(root: Path, classes: list[str], per_class: int = 2, split: str = "test") -> Path:
    """ROOT/<split>/<class>/ with `per_class` random 8x8 PNGs each, and no other split."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            save_image(root / split / name / f"{i}.png", seed=10 * c + i)
    return root


def test_labels_are_indices_of_the_model_classes():
    assert model_labels(["cat", "frog"], MODEL, "here") == [3, 2]


def test_an_unknown_class_is_named_with_the_model_classes():
    with pytest.raises(UserError) as e:
        model_labels(["cat", "zebra", "yak"], MODEL, "ROOT/test")
    message = str(e.value)
    assert "ROOT/test has class 'zebra' (and 1 more unknown)" in message and "horse, dog, frog, cat" in message
    assert "\n" not in message


def test_a_long_class_list_is_shortened():
    classes = [f"c{i:03d}" for i in range(1000)]
    with pytest.raises(UserError, match=r"its 1000 classes are c000, .*, c009, and 990 more;"):
        model_labels(["x"], classes, "ROOT/val")


def test_a_test_only_folder_is_labelled_by_the_model_without_a_train_folder(tmp_path):
    root = one_split(tmp_path, ["cat", "dog"])  # frog and horse: absent, which is allowed
    scan = scan_split(root, "test", classes=MODEL)
    assert scan.classes == MODEL
    assert [(p.parent.name, label) for p, label in zip(scan.files, scan.labels)] == [
        ("cat", 3),
        ("cat", 3),
        ("dog", 1),
        ("dog", 1),
    ]
    assert open_split(root, "test", classes=MODEL).labels.tolist() == [3, 3, 1, 1]
    in_memory = load_split(root, "test", classes=MODEL, cache_dir=tmp_path / "cache", progress=False)
    assert in_memory.labels.tolist() == [3, 3, 1, 1] and in_memory.classes == MODEL


def test_a_folder_class_the_model_lacks_is_an_error(tmp_path):
    root = one_split(tmp_path, ["cat", "zebra"])
    with pytest.raises(UserError, match=r"test has class 'zebra', which the model does not know; its 4 classes"):
        scan_split(root, "test", classes=MODEL)


def test_a_labels_file_names_classes_of_the_model(tmp_path):
    for i in range(2):
        save_image(tmp_path / "val" / f"{i}.png", seed=i)
    labels = tmp_path / "labels.txt"
    labels.write_text("0.png frog\n1.png 0\n")
    assert scan_split(tmp_path, "val", labels, classes=MODEL).labels == [2, 0]
    labels.write_text("0.png zebra\n1.png 0\n")
    with pytest.raises(UserError, match=r"names class 'zebra', which is neither one of the 4 classes \(horse, dog"):
        scan_split(tmp_path, "val", labels, classes=MODEL)


def test_without_model_classes_train_decides_and_else_the_split_itself(tmp_path):
    one_split(tmp_path, ["cat", "dog"], split="train")
    one_split(tmp_path, ["dog"])
    assert scan_split(tmp_path, "test").labels == [1, 1]  # dog is train's class 1
    alone = one_split(tmp_path / "alone", ["dog", "frog"])
    scan = scan_split(alone, "test")
    assert (scan.classes, scan.labels) == (["dog", "frog"], [0, 0, 1, 1])


def test_official_cifar_is_relabelled_by_name(fake_cifar: FakeCifar):
    reordered = CIFAR_CLASSES[::-1]
    test = read_cifar10(fake_cifar.folder, "test", reordered)
    assert test.classes == reordered
    assert test.labels.tolist() == [9 - label for label in fake_cifar.test_labels.tolist()]
    with pytest.raises(UserError, match="has class 'airplane', which the model does not know"):
        read_cifar10(fake_cifar.folder, "test", CIFAR_CLASSES[1:])
