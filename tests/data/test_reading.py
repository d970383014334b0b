"""A run's reading, chosen once from its saved `augmentation`: CIFAR's in memory, photos decoded on demand."""

import shutil

import pytest
import torch

from resnets.data import ImageFiles, ImageSet
from resnets.data.reading import InMemoryReading, OnDemandReading, reading_for


@pytest.mark.parametrize(
    ("train_config", "reading", "view"),
    [
        ({"augmentation": "cifar"}, InMemoryReading, "full"),
        ({"augmentation": "imagenet"}, OnDemandReading, "center"),
        ({"model": "resnet20"}, InMemoryReading, "full"),  # saved before `augmentation` existed: CIFAR's
        ({}, OnDemandReading, "center"),  # weights without a run
    ],
)
def test_the_reading_and_its_test_view_come_from_the_saved_augmentation(train_config, reading, view):
    chosen = reading_for(train_config)
    assert type(chosen) is reading and chosen.validation_view == view


def test_cifar_splits_are_read_into_memory_and_photos_on_demand(cifar_png):
    test = InMemoryReading().read(cifar_png, "test", progress=False)
    assert isinstance(test, ImageSet) and test.images.shape == (60, 3, 32, 32)
    files = OnDemandReading().read(cifar_png, "test", progress=False)
    assert isinstance(files, ImageFiles) and torch.equal(files.image(7), test.images[7])
    assert InMemoryReading().has_held_out(cifar_png) and not OnDemandReading().has_held_out(cifar_png)


def test_a_flat_folder_named_by_a_labels_file_is_read_image_by_image(cifar_png, tmp_path):
    root = shutil.copytree(cifar_png, tmp_path / "data")
    first = sorted((root / "test" / "cat").iterdir())[0]
    (root / "flat").mkdir()
    shutil.copy(first, root / "flat" / "a.png")
    (tmp_path / "labels.txt").write_text("a.png cat\n")
    flat = InMemoryReading().read(root, "flat", labels_file=tmp_path / "labels.txt", progress=False)
    assert isinstance(flat, ImageFiles) and flat.labels.tolist() == [flat.classes.index("cat")]
