"""Tiny trained-model files and image folders for predict, export and serve (generated here; nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnets.data.augment import normalize
from resnets.data.decode import decode_image
from resnets.evaluation.views import center
from resnets.models import ResNet, ResNetConfig, create_model
from resnets.weights.files import TrainedModel, export_safetensors

from ..conftest import CIFAR_CLASSES, FIXTURES

WNIDS = ["n01440764", "n02102040", "n02979186"]  # tench, English springer, cassette player
PHOTO_CONFIG = {"augmentation": "imagenet", "val_split": 0, "test_resize": 36, "crop_size": 32}
CIFAR_CONFIG = {"augmentation": "cifar", "val_split": 0}
CIFAR_PNG = FIXTURES / "cifar10-png"  # shipped: 12 train and 6 test PNGs per class


def fit_head(trained: TrainedModel, folder: Path, crop=None) -> TrainedModel:
    """Set the classifier to the nearest class mean of the random features of `folder`/<class>/ images (cropped by
    `crop`), so that predictions differ from image to image as a trained model's do (a fresh fc predicts one class)."""
    model = trained.model.eval()
    features, labels = [], []
    for label, name in enumerate(trained.classes):
        for file in sorted((folder / name).iterdir()):
            image = torch.from_numpy(decode_image(file))
            x = crop(image)[0] if crop else image[None]
            with torch.no_grad():
                features.append(model.forward_head(model.forward_features(normalize(x, trained.pixel_mean)), True)[0])
            labels.append(label)
    f, y = torch.stack(features), torch.tensor(labels)
    mean = f.mean(0)
    weight = torch.stack([f[y == c].mean(0) - mean for c in range(len(trained.classes))])
    weight = 20 * weight / weight.norm(dim=1, keepdim=True)
    with torch.no_grad():
        model.fc.weight.copy_(weight)
        model.fc.bias.copy_(-weight @ mean)
    return trained


def photo_trained(seed: int = 0, photos: Path | None = None) -> TrainedModel:
    """A 2-stage basic-block net on 32x32 crops of 36-pixel resizes, with a per-pixel mean, for 3 ImageNet classes
    (its head fitted on `photos`/train when given)."""
    torch.manual_seed(seed)
    model = ResNet(ResNetConfig(depths=(1, 1), widths=(8, 16), num_classes=len(WNIDS)))
    trained = TrainedModel("tiny", model, 0.5 + 0.1 * torch.rand(3, 32, 32), list(WNIDS), dict(PHOTO_CONFIG))
    return fit_head(trained, photos / "train", lambda x: center(x, 36, 32)) if photos else trained


def cifar_trained(seed: int = 0, fit: bool = True) -> TrainedModel:
    """ResNet-8 of the CIFAR family (option A: zero-padding shortcuts), CIFAR-10's classes, its head fitted on the
    shipped CIFAR-10 training PNGs."""
    torch.manual_seed(seed)
    model = create_model("cifar_resnet", depth=8, num_classes=10)
    trained = TrainedModel("resnet8", model, torch.full((3, 32, 32), 0.47), list(CIFAR_CLASSES), dict(CIFAR_CONFIG))
    return fit_head(trained, CIFAR_PNG / "train") if fit else trained


def write_photos(root: Path, per_class: int = 3, seed: int = 0) -> Path:
    """ROOT/train/<wnid>/ and ROOT/val/<wnid>/ of random JPEGs of several sizes (smooth, so crops differ)."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for c, wnid in enumerate(WNIDS):
            folder = root / split / wnid
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                h, w = 36 + 7 * i, 44 - 3 * c
                small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
                Image.fromarray(small).resize((w, h), Image.BILINEAR).save(folder / f"{wnid}_{i}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared, read-only: generated image folders of 3 ImageNet classes, 3 JPEGs each in train and val."""
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="session")
def photo_model(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Path:
    """Shared, read-only: photo_trained() fitted on `photos`, as a resnets .safetensors export."""
    path = tmp_path_factory.mktemp("models") / "photo.safetensors"
    export_safetensors(photo_trained(photos=photos), path)
    return path


@pytest.fixture(scope="session")
def cifar_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared, read-only: cifar_trained() as a resnets .safetensors export."""
    path = tmp_path_factory.mktemp("models") / "cifar.safetensors"
    export_safetensors(cifar_trained(), path)
    return path
