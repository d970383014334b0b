"""The package's own CIFAR-10 images: the 1,000-image test slice that `evaluate` scores without --data, and the
sample images that `predict` predicts without paths (src/resnets/released/cifar10/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.cli import main
from resnets.core.errors import UserError
from resnets.data import load_split
from resnets.data.decode import decode_image
from resnets.data.npz import read_npz, write_npz
from resnets.models import ResNet, ResNetConfig
from resnets.weights.files import TrainedModel, export_safetensors
from resnets.weights.samples import SAMPLES, TEST_SLICE, sample_images

from .conftest import CIFAR_CLASSES, FIXTURES

SHIPPED = ["--model", "resnet20", "--weights", "resnets-cifar10"]
NOTICE = "1,000-image slice of the CIFAR-10 test split shipped with the package"


@pytest.fixture(scope="module")
def test_slice():
    return load_split(TEST_SLICE, "test")


def test_the_slice_is_100_real_test_images_of_each_cifar10_class(test_slice):
    assert test_slice.images.shape == (1000, 3, 32, 32) and test_slice.images.dtype == torch.uint8
    assert test_slice.classes == CIFAR_CLASSES
    assert test_slice.labels.bincount().tolist() == [100] * 10
    files = [str(f) for f in np.load(TEST_SLICE)["files"]]
    # The fixture's lossless test PNGs (the first 6 of each class, from the same repository) are in it, pixel for pixel.
    fixtures = sorted((FIXTURES / "cifar10-png" / "test").glob("*/*.png"))
    assert len(fixtures) == 60
    for png in fixtures:
        i = files.index(f"test/{png.parent.name}/{png.name}")
        assert test_slice.classes[test_slice.labels[i]] == png.parent.name
        assert torch.equal(test_slice.images[i], torch.from_numpy(decode_image(png)))


def test_the_samples_are_the_slices_first_image_of_each_class(test_slice):
    assert [p.name for p in sample_images()] == [f"{c}.png" for c in CIFAR_CLASSES]
    for label, png in enumerate(sample_images()):
        first = int(torch.nonzero(test_slice.labels == label)[0])
        assert torch.equal(test_slice.images[first], torch.from_numpy(decode_image(png)))


def test_evaluate_without_data_scores_the_slice_exactly_as_a_folder_of_its_images(test_slice, tmp_path, capsys):
    capsys.readouterr()
    assert main(["evaluate", *SHIPPED, "--json"]) == 0
    out, err = capsys.readouterr()
    shipped = json.loads(out)
    assert NOTICE in err and "--data DIR --split test" in err and "resnets train" in err
    assert (shipped["split"], shipped["images"], shipped["classes"]) == ("test", 1000, 10)
    assert 2 < shipped["top1_error"] < 15  # 9.70% (8.23% on the whole test split)
    for i, (image, label) in enumerate(zip(test_slice.images, test_slice.labels)):
        png = tmp_path / "data" / "test" / test_slice.classes[label] / f"{i:04d}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(png)  # lossless
    argv = ["evaluate", *SHIPPED, "--data", str(tmp_path / "data"), "--split", "test", "--workers", "0", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    as_folder = json.loads(out)
    assert NOTICE not in err
    same = ("top1_error", "top5_error", "images")
    assert list(as_folder["views"]) == list(shipped["views"]) == ["full"]
    assert [as_folder["views"]["full"][k] for k in same] == [shipped["views"]["full"][k] for k in same]


def test_predict_without_paths_predicts_the_packages_samples(capsys):
    capsys.readouterr()
    assert main(["predict", *SHIPPED, "--top-k", "1", "--json", "--backend", "torch"]) == 0
    out, err = capsys.readouterr()
    results = json.loads(out)
    assert [Path(r["file"]) for r in results] == [SAMPLES / f"{c}.png" for c in CIFAR_CLASSES]
    right = sum(r["top"][0]["label"] == Path(r["file"]).stem for r in results)
    assert right >= 8  # 9 of 10: the cat is taken for an airplane
    assert "the package's sample images" in err


def test_predict_with_paths_predicts_those(capsys, tmp_path):
    png = tmp_path / "mine.png"
    png.write_bytes((SAMPLES / "ship.png").read_bytes())
    assert main(["predict", *SHIPPED, str(png), "--top-k", "1", "--json", "--backend", "torch"]) == 0
    out, err = capsys.readouterr()
    assert [r["file"] for r in json.loads(out)] == [str(png)] and "sample" not in err


@pytest.fixture(scope="module")
def photo_model(tmp_path_factory):
    """An exported network for photos (ImageNet's stem and reading), three classes."""
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(depths=(1, 1), widths=(8, 16), num_classes=3))
    config = {"val_split": 0, "augmentation": "imagenet", "test_resize": 64, "crop_size": 56}
    path = tmp_path_factory.mktemp("w") / "photo.safetensors"
    export_safetensors(TrainedModel("tiny", model, torch.rand(3, 1, 1), ["a", "b", "c"], config), path)
    return str(path)


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("source", ["--model", "--checkpoint"])
def test_a_model_for_photos_without_data_is_a_one_line_error(command, source, photo_model, capsys):
    # --model resnet50 is refused before its torchvision weights would be downloaded.
    given = ["--model", "resnet50", "--weights", "torchvision-v1"] if source == "--model" else [source, photo_model]
    if command == "predict" and source == "--checkpoint":
        given = ["--checkpoint", photo_model, "--backend", "torch"]
    capsys.readouterr()
    assert main([command, *given]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "for CIFAR models only" in err
    assert ("--data DIR" if command == "evaluate" else "pass image files") in err


def test_evaluate_without_data_takes_only_the_test_split(capsys):
    assert main(["evaluate", *SHIPPED, "--split", "val"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "slice is of the test split, not val; pass --data DIR" in err


def test_an_npz_split_refuses_another_split_and_a_file_of_something_else(tmp_path):
    with pytest.raises(UserError, match="holds the test split only, not 'train'; pass --split test"):
        read_npz(TEST_SLICE, "train")
    np.savez(tmp_path / "other.npz", images=np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(UserError, match="has no labels, classes, split"):
        read_npz(tmp_path / "other.npz", "test")
    np.savez(tmp_path / "pickled.npz", images=np.array([{}], dtype=object), labels=[0], classes=["a"], split="test")
    with pytest.raises(UserError, match="cannot read"):  # no pickles: a tampered file cannot run code
        read_npz(tmp_path / "pickled.npz", "test")


def test_an_npz_split_round_trips_under_a_models_class_order(test_slice, tmp_path):
    write_npz(tmp_path / "s.npz", test_slice.subset(list(range(0, 1000, 100))), "test", ["x"] * 10)
    mine = load_split(tmp_path / "s.npz", "test", classes=CIFAR_CLASSES[::-1])
    assert mine.classes == CIFAR_CLASSES[::-1]
    assert mine.labels.tolist() == [9 - int(label) for label in test_slice.labels[::100]]
    assert torch.equal(mine.images, test_slice.images[::100])
