"""Fixtures for the data tests: fake official-format CIFAR-10 and generated images (real slices: tests/conftest.py)."""

from __future__ import annotations

import hashlib
import io
import pickle
import shutil
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ..conftest import CIFAR_CLASSES, IMAGENETTE_ARCHIVE, PER_CLASS, extract_members  # noqa: F401 (re-exported)


@pytest.fixture
def image_folder(tmp_path: Path, cifar_jpegs: Path) -> Path:
    """This test's own copy of the tiny real CIFAR-10 image folder, free to modify."""
    return Path(shutil.copytree(cifar_jpegs, tmp_path / "images"))


IMAGENETTE_CLASSES, IMAGENETTE_PER_CLASS = 3, 4


@pytest.fixture(scope="session")
def imagenette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared, read-only: ROOT/train/<wnid>/ with 4 real Imagenette val JPEGs (224x224) for each of 3 classes."""
    root = tmp_path_factory.mktemp("imagenette")
    extract_members(IMAGENETTE_ARCHIVE, root, IMAGENETTE_PER_CLASS, IMAGENETTE_CLASSES)
    (root / "val").rename(root / "train")  # the archive holds val/ only
    return root


@pytest.fixture
def imagenette_copy(tmp_path: Path, imagenette: Path) -> Path:
    """This test's own copy of the tiny Imagenette folder, free to modify."""
    return Path(shutil.copytree(imagenette, tmp_path / "imagenette"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def save_image(path: Path, size: tuple[int, int] = (8, 8), mode: str = "RGB", fmt: str = "PNG", seed: int = 0) -> Path:
    """Write a random-noise image of `size` (W, H) and `mode` to `path` in format `fmt`; return the path."""
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    (rgb if mode == "RGB" else rgb.convert(mode)).save(path, fmt)
    return path


@dataclass(frozen=True)
class FakeCifar:
    """An official-format cifar-10-batches-py folder with a few random images per batch, and its contents."""

    folder: Path
    train_data: np.ndarray  # the raw rows, [N, 3072], data_batch_1..5 concatenated
    train_labels: np.ndarray
    test_data: np.ndarray
    test_labels: np.ndarray


class Py2Pickler(pickle._Pickler):
    """Pickles bytes as Python 2 `str` (BINSTRING opcodes), as the official batch files hold them."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_batch(path: Path, obj: object) -> None:
    """Write `obj` as the official files are written: protocol 2, by Python 2 with numpy 1."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    # numpy 2 names its unpickling function numpy._core...; the official files (numpy 1) say numpy.core...
    # GLOBAL opcodes are newline-terminated text, so renaming in place keeps the pickle valid.
    path.write_bytes(buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))


@pytest.fixture
def fake_cifar(tmp_path: Path) -> FakeCifar:
    """A tiny cifar-10-batches-py folder in the official python format: 3 images per batch."""
    folder = tmp_path / "fake" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_batch(folder / "batches.meta", {"label_names": CIFAR_CLASSES, "num_cases_per_batch": 3, "num_vis": 3072})
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 3).tolist()
        write_batch(folder / name, {"batch_label": name, "labels": labels, "data": data, "filenames": ["a", "b", "c"]})
        batches[name] = (data, np.array(labels))
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    return FakeCifar(
        folder,
        np.concatenate([d for d, _ in train]),
        np.concatenate([lab for _, lab in train]),
        *batches["test_batch"],
    )


@pytest.fixture
def fake_cifar_archive(tmp_path: Path, fake_cifar: FakeCifar) -> tuple[Path, str]:
    """fake_cifar packed as cifar-10-python.tar.gz in its own folder, and the archive's md5."""
    archive = tmp_path / "served" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fake_cifar.folder, arcname="cifar-10-batches-py")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()
